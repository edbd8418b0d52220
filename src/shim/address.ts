/**
 * Where a shim group listens. Same scheme as the reference shim, so one group maps to
 * one socket whatever process computes it: sha256 of "<containerd address>/<ns>/<key>"
 * under the socket dir. The hash keeps the path under the unix socket length limit.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { connectPipe } from '../sys/uv-pipe.js';

export const DEFAULT_SOCKET_DIR = '/run/containerd/s';

export function socketPath(socketDir: string, containerdAddress: string, namespace: string, groupKey: string): string {
  const joined = join(stripUnix(containerdAddress), namespace, groupKey);
  const hash = createHash('sha256').update(joined).digest('hex');
  return join(socketDir, hash);
}

export function stripUnix(address: string): string {
  return address.startsWith('unix://') ? address.slice('unix://'.length) : address;
}

export function unixAddress(socket: string): string {
  return `unix://${socket}`;
}

/**
 * Grouping: an explicit group annotation wins, then the CRI sandbox id (one shim per
 * pod), then the configured scope ("namespace": one shim for every task of the
 * namespace), else the task id.
 */
export const GROUP_ANNOTATION = 'io.containerd.tsshim.v2.group';
export const RUNC_GROUP_ANNOTATION = 'io.containerd.runc.v2.group';
export const CRI_SANDBOX_ID = 'io.kubernetes.cri.sandbox-id';
/** the key of scope "namespace" (the C launcher gets it at build time) */
export const NAMESPACE_GROUP_KEY = '_tsshim_namespace';

export function groupKey(annotations: Record<string, unknown> | undefined, id: string, scope: 'container' | 'pod' | 'namespace'): string {
  const a = annotations ?? {};
  for (const k of [GROUP_ANNOTATION, RUNC_GROUP_ANNOTATION]) {
    const v = a[k];
    if (typeof v === 'string' && v) return v;
  }
  if (scope === 'namespace') return NAMESPACE_GROUP_KEY;
  const sandbox = a[CRI_SANDBOX_ID];
  if (scope === 'pod' && typeof sandbox === 'string' && sandbox) return sandbox;
  return id;
}

/**
 * Whether a daemon listens on a unix socket: 'answers'; 'refused' (the file is there and
 * nobody listens: its daemon died, or a start is between bind and listen); 'unknown' (no
 * such file, another error, or no answer within the deadline).
 */
export function probeSocket(sock: string, timeoutMs = 1_000): Promise<'answers' | 'refused' | 'unknown'> {
  return new Promise((resolve) => {
    const conn = connectPipe(sock);
    const done = (result: 'answers' | 'refused' | 'unknown') => {
      clearTimeout(timer);
      conn.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('unknown'), timeoutMs);
    conn.once('connect', () => done('answers'));
    conn.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : 'unknown'));
  });
}
