/**
 * Shared setup for the native backend's component tests: a freshly built helper, the
 * shim's Reaper in this process (a child subreaper, like the daemon), busybox bundles
 * whose config can be edited per test, and output captured in plain files.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeBackend } from '../../src/backends/native/backend.js';
import type { BackendContainer, ExitEvent, ExitSubscription, ProcessStdio } from '../../src/core/backend.js';
import { Reaper } from '../../src/sys/reaper.js';
import { makeBundle, removeRootfsTemplate } from './oci-bundle.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const isRoot = process.getuid?.() === 0;
export const NAMESPACE = 'tsshim-test';

export async function buildHelper(): Promise<string> {
  const { buildNative } = (await import(path.join(repoRoot, 'scripts/build-native.mjs'))) as { buildNative: (root: string) => string };
  return buildNative(repoRoot);
}

export type Spec = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** a busybox bundle whose config.json `edit` may change (runc spec defaults otherwise) */
export function bundle(parent: string, id: string, args: string[], cgroupParent: string, edit?: (s: Spec) => void): string {
  const dir = makeBundle(parent, id, { args, cgroupsPath: `${cgroupParent}/${id}` });
  // the template rootfs is a mkdtemp copy (0700): let non-root container users in
  fs.chmodSync(path.join(dir, 'rootfs'), 0o755);
  const file = path.join(dir, 'config.json');
  const spec = JSON.parse(fs.readFileSync(file, 'utf8')) as Spec;
  spec.process.terminal = false;
  edit?.(spec);
  fs.writeFileSync(file, JSON.stringify(spec, null, 2));
  return dir;
}

/** the exit of pid, from the subscription (already buffered or still to come) */
export function exitOf(sub: ExitSubscription, pid: number, timeoutMs = 15_000): Promise<ExitEvent> {
  const seen = sub.take(pid);
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no exit for pid ${pid} within ${timeoutMs} ms`)), timeoutMs);
    sub.onExit((e) => {
      if (e.pid === pid) {
        clearTimeout(t);
        resolve(e);
      }
    });
  });
}

/** stdout and stderr into files, read back once the process has exited */
export class CapturedOutput {
  readonly stdout: number;
  readonly stderr: number;
  private readonly outFile: string;
  private readonly errFile: string;
  constructor(dir: string, name: string) {
    this.outFile = path.join(dir, `${name}.out`);
    this.errFile = path.join(dir, `${name}.err`);
    this.stdout = fs.openSync(this.outFile, 'w');
    this.stderr = fs.openSync(this.errFile, 'w');
  }
  get stdio(): ProcessStdio {
    return { terminal: false, stdin: 'ignore', stdout: this.stdout, stderr: this.stderr };
  }
  out(): string {
    return fs.readFileSync(this.outFile, 'utf8');
  }
  err(): string {
    return fs.readFileSync(this.errFile, 'utf8');
  }
  close(): void {
    for (const fd of [this.stdout, this.stderr]) {
      try {
        fs.closeSync(fd);
      } catch {
        /* closed */
      }
    }
  }
}

export interface NativeEnv {
  reaper: Reaper;
  sub: ExitSubscription;
  workDir: string;
  stateRoot: string;
  cgroupParent: string;
  backend: NativeBackend;
  helperPath: string;
}

export async function setupNative(tag: string): Promise<NativeEnv> {
  const helperPath = await buildHelper();
  const reaper = Reaper.install();
  const sub = reaper.subscribe();
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `tsshim-native-${tag}-`));
  const stateRoot = path.join(workDir, 'state', NAMESPACE);
  const cgroupParent = `/tsshim-native-${tag}-${process.pid}`;
  const backend = new NativeBackend({ root: stateRoot, exits: reaper, helperPath });
  return { reaper, sub, workDir, stateRoot, cgroupParent, backend, helperPath };
}

/** every directory of the test's cgroup parent, in any hierarchy */
export function cgroupDirsUnder(cgroupParent: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', entry, cgroupParent);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) if (child.isDirectory()) out.push(path.join(dir, child.name));
  }
  return out;
}

export function removeCgroupParent(cgroupParent: string): void {
  for (const entry of fs.readdirSync('/sys/fs/cgroup')) {
    const dir = path.join('/sys/fs/cgroup', entry, cgroupParent);
    if (!fs.existsSync(dir)) continue;
    for (const child of fs.readdirSync(dir, { withFileTypes: true })) {
      if (child.isDirectory()) fs.rmdirSync(path.join(dir, child.name));
    }
    fs.rmdirSync(dir);
  }
}

/** what every native test file undoes at the end: outputs, the subscription, cgroups, files */
export function teardownNative(env: NativeEnv | undefined, outputs: CapturedOutput[]): void {
  for (const o of outputs) o.close();
  if (!env) return;
  env.sub.close();
  removeCgroupParent(env.cgroupParent);
  fs.rmSync(env.workDir, { recursive: true, force: true });
  removeRootfsTemplate();
}

/** kills a container's init and deletes the container, whatever state it is in (cleanup) */
export async function forceRemove(env: NativeEnv, container: BackendContainer, pid: number): Promise<void> {
  await env.backend.kill(container, 9, false).catch(() => undefined);
  await exitOf(env.sub, pid).catch(() => undefined);
  await env.backend.delete(container, { force: true });
}
