/**
 * `containerd-shim-tsshim-v2 … delete`: clean up after a shim that is gone (crash,
 * SIGKILL, containerd restart with an unreachable shim) — and, on every happy path too,
 * after containerd deleted the task. Idempotent, within containerd's 5 s budget, and
 * usually without starting any runtime binary: if the runtime holds no state for the
 * id and nothing is mounted, there is nothing to do.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { probeSocket } from './address.js';
import type { ShimArgs } from './args.js';
import { readBundleState } from './bundle-state.js';
import { DeleteResponse } from '../proto/gen/containerd/task/v2/shim.js';
import { timestampFromDate } from '../proto/typeurls.js';
import { isMountPoint } from '../sys/mountinfo.js';

export async function runDelete(args: ShimArgs): Promise<Uint8Array> {
  const bundle = args.bundle || process.cwd();
  try {
    return await cleanUp(args, bundle);
  } finally {
    // whatever the runtime's cleanup did, a socket nobody listens on goes
    await removeStaleSocket(bundle).catch(() => undefined);
  }
}

async function cleanUp(args: ShimArgs, bundle: string): Promise<Uint8Array> {
  const id = args.id;
  const state = readBundleState(bundle) ?? (await defaultState(args.namespace));
  let pid = 0;
  try {
    pid = parseInt(readFileSync(join(bundle, 'init.pid'), 'utf8'), 10) || 0;
  } catch {
    /* never created */
  }
  if (state && (state.backend === 'runc' || state.backend === 'crun')) {
    if (existsSync(join(state.root, id))) {
      const { RuncBackend } = await import('../backends/runc/backend.js');
      const backend = new RuncBackend({
        name: state.backend,
        binary: state.binary,
        root: state.root,
        systemdCgroup: state.systemdCgroup,
        exits: { subscribe: () => { throw new Error('delete action reaps nothing'); } },
      });
      await backend.cleanupAfterCrash({ id, namespace: args.namespace, bundle, options: {} });
    }
  } else if (state?.backend === 'gvisor') {
    // `runsc delete --force` stops the sandbox (and its gofers) of a container whose shim died
    const { GvisorBackend } = await import('../backends/gvisor/backend.js');
    const { defaultConfig } = await import('./config.js');
    const config = { ...defaultConfig().gvisor, binary: state.binary };
    const backend = new GvisorBackend({
      config,
      root: state.root,
      exits: { subscribe: () => { throw new Error('delete action reaps nothing'); } },
    });
    if (backend.hasState(state.root, id)) await backend.cleanupAfterCrash({ id, namespace: args.namespace, bundle, options: {} });
    // a sandbox that died with its shim leaves the cgroup runsc made for it (runsc removes it
    // only when it stops the sandbox itself)
    await removeLeftoverCgroup(bundle).catch(() => undefined);
  } else if (state?.backend === 'kata') {
    // the VM (hypervisor, virtiofsd, vsock device) of a sandbox whose shim died, and the
    // container's shares in the pod's shared directory
    const { KataBackend } = await import('../backends/kata/backend.js');
    const { defaultConfig } = await import('./config.js');
    const backend = new KataBackend({
      config: defaultConfig().kata,
      namespace: args.namespace,
      exits: { subscribe: () => { throw new Error('delete action reaps nothing'); } },
    });
    await backend.cleanupAfterCrash({ id, namespace: args.namespace, bundle, options: {} });
  } else if (state?.backend === 'native' && existsSync(join(state.root, id))) {
    const { NativeBackend } = await import('../backends/native/backend.js');
    if (!pid) {
      // the native executor keeps the init pid in its own state, not in <bundle>/init.pid
      const { readState } = await import('../backends/native/state.js');
      try {
        pid = readState(state.root, id).initPid;
      } catch {
        /* state already gone */
      }
    }
    const backend = new NativeBackend({
      root: state.root,
      systemdCgroup: state.systemdCgroup,
      exits: { subscribe: () => { throw new Error('delete action reaps nothing'); } },
    });
    await backend.cleanupAfterCrash({ id, namespace: args.namespace, bundle, options: {} });
  }
  const rootfs = join(bundle, 'rootfs');
  if (isMountPoint(rootfs)) {
    const { RootfsMounts } = await import('../sys/rootfs.js');
    await new RootfsMounts().unmount(rootfs);
  }
  // like the reference shim: the task is reported killed
  return DeleteResponse.encode({ pid, exitStatus: 128 + 9, exitedAt: timestampFromDate(new Date()) }).finish();
}

/**
 * The group's socket (named in the bundle's `address` file) when no daemon listens on it any
 * more: a shim killed with SIGKILL cannot remove it, and containerd does not. A live daemon
 * of the same group (other pods) keeps it. containerd's runc shim leaves it behind for good.
 */
async function removeStaleSocket(bundle: string): Promise<void> {
  let sock: string;
  try {
    sock = readFileSync(join(bundle, 'address'), 'utf8').trim().replace(/^unix:\/\//, '');
  } catch {
    return; // never started
  }
  if (!isAbsolute(sock)) return;
  const inode = () => {
    try {
      return statSync(sock).ino;
    } catch {
      return undefined;
    }
  };
  const before = inode();
  if (before === undefined) return;
  // refused twice, like start judges a socket stale: a concurrent start may be between
  // its bind and its listen
  if ((await probeSocket(sock)) !== 'refused') return;
  await new Promise((r) => setTimeout(r, 10));
  if ((await probeSocket(sock)) !== 'refused') return;
  // a start that replaced the file meanwhile made a new one: leave that alone
  if (inode() === before) rmSync(sock, { force: true });
}

/** no state file (Create failed early): look where a default-configured shim would have put it */
async function defaultState(namespace: string) {
  try {
    const { loadConfig } = await import('./config.js');
    const cfg = loadConfig();
    if (cfg.backend === 'gvisor') return { backend: cfg.backend, binary: cfg.gvisor.binary, root: join(cfg.gvisor.root, namespace), systemdCgroup: false };
    if (cfg.backend === 'native') return { backend: cfg.backend, binary: '', root: join(cfg.native.root, namespace), systemdCgroup: cfg.native.systemdCgroup };
    const table = cfg.backend === 'crun' ? cfg.crun : cfg.runc;
    return { backend: cfg.backend, binary: table.binary, root: join(table.root, namespace), systemdCgroup: table.systemdCgroup };
  } catch {
    return undefined;
  }
}

/**
 * The cgroup of the bundle's linux.cgroupsPath (cgroupfs reading), once its last process is
 * gone: what a runtime that died with its shim could not remove. A cgroup that still holds
 * processes after a short wait is left alone.
 */
async function removeLeftoverCgroup(bundle: string): Promise<void> {
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { linux?: { cgroupsPath?: string } };
  const cgroupsPath = spec.linux?.cgroupsPath;
  if (!cgroupsPath || !cgroupsPath.startsWith('/')) return;
  const { CgroupManager } = await import('../backends/native/cgroup-manager.js');
  const cgroups = new CgroupManager();
  const set = cgroups.setFor(cgroupsPath);
  await cgroups.waitEmpty(set, 2_000);
  await cgroups.destroy(set);
}
