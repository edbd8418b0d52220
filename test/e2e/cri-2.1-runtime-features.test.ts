/**
 * containerd 2.1's CRI and tsshim's OCI runtime features (recursive read-only mounts, user
 * namespaces). containerd 2.0/2.1 introspect a handler's features only for runtime type
 * io.containerd.runc.v2 (internal/cri/server/service.go, introspectRuntimeFeatures: any other
 * type is an error, logged at debug, and the handler gets no features). For that type they
 * ask the runtime plugin for PluginInfo with RuntimeRequest.RuntimePath = the handler's
 * `runtime_path` when set, and the runtime plugin runs `<that binary> -info` with the handler's
 * runc options on stdin (core/runtime/v2, getRuntimeInfo). The same `runtime_path` is the shim
 * binary CRI's tasks run with (WithRuntimePath; containerd records it in the bundle's
 * shim-binary-path, so a restarted containerd finds it again). So a handler
 *
 *   runtime_type = "io.containerd.runc.v2"
 *   runtime_path = ".../containerd-shim-tsshim-v2"   (or an alias: ...-tsshim-native-v2)
 *
 * runs its pods under tsshim AND shows tsshim's features through CRI. This file checks that
 * end to end against the reference runc handler, and that the plain tsshim runtime type shows
 * none (the limitation the workaround is for).
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchCriContainerd, type CriContainerd, type CriHandler } from './harness/cri-containerd.js';
import { containerConfig, containerPid, parentOf, podConfig, startContainer } from './harness/cri-pods.js';
import { readExe } from './harness/proc-fs.js';
import { tsshimBinary } from './harness/repo-paths.js';

type Features = { recursiveReadOnlyMounts: boolean; userNamespaces: boolean } | null;

describe('containerd 2.1 CRI: runtime handler features (tsshim as a runc-typed handler with runtime_path)', () => {
  let env: CriContainerd;
  let handlers: Map<string, Features>;
  /** host dir mounted into the containers, with a tmpfs submount `sub` */
  let volume: string;

  beforeAll(async () => {
    env = await launchCriContainerd({ line: '2.1' });
    handlers = new Map((await env.cri.status(true)).runtimeHandlers.map((h) => [h.name, h.features]));
    volume = join(env.cd.dir, 'rro-volume');
    mkdirSync(join(volume, 'sub'), { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'rro-sub', join(volume, 'sub')]);
  });

  afterAll(async () => {
    if (!env) return;
    if (volume && existsSync(join(volume, 'sub'))) await execa('umount', [join(volume, 'sub')], { reject: false });
    const problems = await env.cd.destroy();
    expect(problems).toEqual([]);
    expect(env.cd.shimProcesses()).toEqual([]);
    expect(env.cd.cgroupDirs()).toEqual([]);
  });

  it('the reference runc handler reports recursive read-only mounts (runc has "rro", the kernel mount_setattr)', () => {
    expect(handlers.get('runc')).toEqual(expect.objectContaining({ recursiveReadOnlyMounts: true }));
  });

  it('a handler of runtime type io.containerd.tsshim.v2 gets no features: containerd 2.1 introspects runc-typed handlers only', () => {
    expect(handlers.has('tsshim')).toBe(true);
    const f = handlers.get('tsshim');
    expect(f?.recursiveReadOnlyMounts ?? false).toBe(false);
    expect(f?.userNamespaces ?? false).toBe(false);
  });

  it('runc-typed with runtime_path = tsshim (backend runc): the same features as the reference, from tsshim -info', () => {
    expect(handlers.get('tsshim-runc-typed')).toEqual(handlers.get('runc'));
  });

  it('runc-typed with runtime_path = the native alias: introspected, recursive read-only mounts reported', () => {
    const f = handlers.get('tsshim-native-runc-typed');
    expect(f).not.toBeNull();
    expect(f?.recursiveReadOnlyMounts).toBe(true);
  });

  /**
   * A container with the volume mounted read-only, recursively or not; returns what writes
   * inside see: at the mount's top, in its submount.
   */
  async function writesInside(handler: CriHandler, name: string, recursiveReadOnly: boolean): Promise<{ top: string; sub: string; shimExe: string | undefined }> {
    const pod = podConfig(env, name);
    const sandboxId = await env.cri.runPodSandbox(pod, handler);
    try {
      const id = await startContainer(
        env,
        sandboxId,
        pod,
        containerConfig('c', ['sleep', '300'], {
          mounts: [{ containerPath: '/data', hostPath: volume, readonly: true, recursiveReadOnly, propagation: 'PROPAGATION_PRIVATE' }],
        }),
      );
      const attempt = async (path: string) => {
        const r = await env.cri.execSync(id, ['sh', '-c', `touch ${path} 2>&1 && echo written`]);
        return Buffer.from(r.stdout).toString().trim();
      };
      return { top: await attempt('/data/x'), sub: await attempt('/data/sub/x'), shimExe: readExe(parentOf(await containerPid(env, id))) };
    } finally {
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
      rmSync(join(volume, 'sub', 'x'), { force: true });
    }
  }

  for (const handler of ['runc', 'tsshim-runc-typed', 'tsshim-native-runc-typed'] as const) {
    it(`${handler}: a recursive read-only mount is read-only in its submounts too`, async () => {
      const r = await writesInside(handler, `rro-${handler}`, true);
      expect(r.top).toMatch(/Read-only file system/);
      expect(r.sub).toMatch(/Read-only file system/);
      if (handler !== 'runc') expect(r.shimExe).not.toMatch(/containerd-shim-runc-v2/);
    });
  }

  it('tsshim-runc-typed: pods run under tsshim (containerd recorded the runtime_path for the shim)', async () => {
    const pod = podConfig(env, 'which-shim');
    const sandboxId = await env.cri.runPodSandbox(pod, 'tsshim-runc-typed');
    try {
      const bundle = env.cd.bundleDir(sandboxId);
      expect(readFileSync(join(bundle, 'shim-binary-path'), 'utf8')).toBe(tsshimBinary);
    } finally {
      await env.cri.stopPodSandbox(sandboxId);
      await env.cri.removePodSandbox(sandboxId);
    }
  });

  it('a plain read-only mount (not recursive) leaves the submount writable: the check above can tell', async () => {
    const r = await writesInside('tsshim-runc-typed', 'ro-plain', false);
    expect(r.top).toMatch(/Read-only file system/);
    expect(r.sub).toBe('written');
  });
});
