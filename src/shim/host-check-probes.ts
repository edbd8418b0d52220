/**
 * The I/O behind `tsshim check` (host-check.ts): small file reads, PATH lookups, and commands
 * run under a deadline. Everything a probe creates (scratch dirs, namespaces) is gone when it
 * returns; a command that overruns its deadline is killed with its whole process group.
 * Unit tests replace this with a fake (test/unit/host-check.test.ts).
 */
import { guestAssetsFrom } from '../backends/kata/guest-assets.js';
import { childProcess } from '../sys/lazy-builtins.js';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { GvisorPlatform } from './config.js';

export interface CommandResult {
  /** exit status 0 */
  ok: boolean;
  /** exit status; undefined when killed or not started */
  code: number | undefined;
  /** the signal that ended it */
  signal?: string;
  /** stdout + stderr, at most a few KiB */
  output: string;
  timedOut: boolean;
  /** why it could not start (ENOENT, EACCES) */
  spawnError?: string;
  ms: number;
}

export interface FileInfo {
  kind: 'file' | 'dir' | 'char' | 'other';
  size: number;
  executable: boolean;
}

export interface KataAssetDefaults {
  kernel: string;
  initrd: string;
  vhostDeviceVsock: string;
  virtiofsd: string;
}

export interface HostProbes {
  uid(): number;
  /** a small text file; undefined when unreadable */
  readText(path: string): string | undefined;
  stat(path: string): FileInfo | undefined;
  /** a program on PATH (or a path as given), resolved; undefined when missing */
  which(program: string): string | undefined;
  run(file: string, args: readonly string[], o: { timeoutMs: number }): Promise<CommandResult>;
  /** the native executor where the build puts it; undefined when not built */
  nativeExecutor(): Promise<string | undefined>;
  /** undefined when the ffi-rs addon loads and a libc call through it works, else why not */
  ffiError(): Promise<string | undefined>;
  /** boots /bin/true under runsc in a scratch root (the backend's probe, src/backends/gvisor/runsc-facts.ts) */
  runscBoots(runsc: string, platform: GvisorPlatform, o: { network: 'none' | 'host' | 'sandbox'; ownNetns: boolean }): Promise<CommandResult>;
  /** the platform the gvisor backend cached for this runsc under `cacheDir` */
  runscCachedPlatform(runsc: string, cacheDir: string): Promise<{ platform: GvisorPlatform | undefined; file: string }>;
  /**
   * QEMU booting a 64 KiB firmware that exits through isa-debug-exit at once (status 3):
   * whether this accelerator runs a guest here, optionally with its RAM a shared memfd (what
   * vhost-user devices need)
   */
  qemuBoots(qemu: string, accel: 'kvm' | 'tcg', o: { memfd: boolean }): Promise<CommandResult>;
  /** a veth, a tap and tc mirred between them, in a throwaway network namespace */
  podNetworkProbe(): Promise<CommandResult>;
  kataAssetDefaults(): KataAssetDefaults;
}

const OUTPUT_CAP = 8192;

function runCommand(file: string, args: readonly string[], o: { timeoutMs: number; cwd?: string }): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((done) => {
    let output = '';
    let timedOut = false;
    let settled = false;
    const finish = (r: Omit<CommandResult, 'ms' | 'output' | 'timedOut'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      done({ ...r, output, timedOut, ms: Date.now() - started });
    };
    // its own process group: a deadline kills whatever it started too
    const child = childProcess().spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: o.cwd ?? '/', env: { ...process.env, LC_ALL: 'C' } });
    const take = (b: Buffer) => {
      if (output.length < OUTPUT_CAP) output += b.toString('utf8');
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }, o.timeoutMs);
    child.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, code: undefined, spawnError: err.code ?? err.message }));
    child.on('close', (code, signal) => finish({ ok: code === 0, code: code ?? undefined, ...(signal ? { signal } : {}) }));
  });
}

/** runs `fn` with a scratch directory that is removed afterwards */
async function withScratch<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * 64 KiB of `hlt`, with the reset vector (16 bytes from the end) doing `mov al,1; out 0xf4,al`:
 * isa-debug-exit at 0xf4 makes QEMU exit with (1 << 1) | 1 = 3 as soon as the CPU runs.
 */
function exitFirmware(): Buffer {
  const fw = Buffer.alloc(64 * 1024, 0xf4);
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4]).copy(fw, fw.length - 16);
  return fw;
}

export const QEMU_PROBE_EXIT = 3;

/**
 * The firmware boot behind `qemuBoots`. The kata backend's hypervisor module probes KVM the
 * same way before it picks an accelerator; the two can become one function.
 */
export function qemuProbeArgs(firmware: string, accel: 'kvm' | 'tcg', memfd: boolean): string[] {
  return [
    '-machine', 'q35', '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max', '-m', '16',
    ...(memfd ? ['-object', 'memory-backend-memfd,id=mem,size=16M,share=on', '-numa', 'node,memdev=mem'] : []),
    '-display', 'none', '-nodefaults', '-no-user-config', '-bios', firmware,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=1',
  ];
}

/** what podNetworkProbe runs: what src/backends/kata/pod-network.ts sets up in a pod's netns */
export const POD_NETWORK_SCRIPT = [
  'set -e',
  'ip link add tsck0 type veth peer name tsck1',
  'ip tuntap add dev tsck-tap mode tap',
  'tc qdisc add dev tsck0 ingress',
  'tc filter add dev tsck0 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev tsck-tap',
  'tc qdisc add dev tsck-tap ingress',
  'tc filter add dev tsck-tap parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev tsck0',
].join('\n');

/** The kata guest's default files, as scripts/build-kata-guest.sh and fetch-kata.sh lay them out. */
/** the kata backend's own defaults (src/backends/kata/guest-assets.ts): one place decides them */
export function kataAssetDefaults(env: NodeJS.ProcessEnv = process.env): KataAssetDefaults {
  const a = guestAssetsFrom(undefined, env);
  return { kernel: a.kernel, initrd: a.initrd, vhostDeviceVsock: a.vhostDeviceVsock, virtiofsd: a.virtiofsd };
}

export function realProbes(): HostProbes {
  return {
    uid: () => process.getuid?.() ?? -1,
    readText(path) {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
    },
    stat(path) {
      try {
        const st = statSync(path);
        let executable = false;
        try {
          accessSync(path, fsConstants.X_OK);
          executable = st.isFile();
        } catch {
          executable = false;
        }
        return { kind: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isCharacterDevice() ? 'char' : 'other', size: st.size, executable };
      } catch {
        return undefined;
      }
    },
    which(program) {
      const dirs = program.includes('/') ? [''] : (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
      for (const d of dirs) {
        const candidate = d ? join(d, program) : program;
        try {
          accessSync(candidate, fsConstants.X_OK);
          if (statSync(candidate).isFile()) return candidate;
        } catch {
          // next
        }
      }
      return undefined;
    },
    run: (file, args, o) => runCommand(file, args, o),
    async nativeExecutor() {
      const { defaultHelperPath } = await import('../backends/native/helper-client.js');
      try {
        return defaultHelperPath();
      } catch {
        return undefined;
      }
    },
    async ffiError() {
      try {
        const ffi = await import('../sys/ffi.js');
        ffi.isChildSubreaper();
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
    async runscBoots(runsc, platform, o) {
      const { bootProbeArgs } = await import('../backends/gvisor/runsc-facts.js');
      return withScratch('tsshim-check-runsc-', async (root) => {
        const argv = bootProbeArgs(root, platform, o.network ?? 'none');
        const [file, args] = o.ownNetns ? ['unshare', ['--net', runsc, ...argv]] : [runsc, argv];
        const r = await runCommand(file, args, { timeoutMs: 15_000 });
        return { ...r, ok: r.code === 0 && !r.timedOut };
      });
    },
    async runscCachedPlatform(runsc, cacheDir) {
      const { readCachedPlatform, factsFile } = await import('../backends/gvisor/runsc-facts.js');
      return { platform: readCachedPlatform(runsc, cacheDir), file: factsFile(cacheDir) };
    },
    qemuBoots(qemu, accel, o) {
      return withScratch('tsshim-check-qemu-', async (dir) => {
        const fw = join(dir, 'exit.bin');
        writeFileSync(fw, exitFirmware());
        // cwd in the scratch dir: a QEMU that aborts (as on a KVM that cannot run guests) may dump core there
        const r = await runCommand(qemu, qemuProbeArgs(fw, accel, o.memfd), { timeoutMs: 10_000, cwd: dir });
        // the firmware's debug-exit is the only way to status 3: the guest ran
        return { ...r, ok: r.code === QEMU_PROBE_EXIT };
      });
    },
    podNetworkProbe() {
      return runCommand('unshare', ['--net', 'sh', '-c', POD_NETWORK_SCRIPT], { timeoutMs: 5_000 });
    },
    kataAssetDefaults: () => kataAssetDefaults(),
  };
}
