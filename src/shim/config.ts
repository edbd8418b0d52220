/**
 * tsshim's own configuration: a TOML file. Where it comes from, first match wins:
 *   1. the runtime options' config path (runtimeoptions.v1.Options.config_path, what CRI
 *      passes for a runtime's `options.ConfigPath`), or its config_body (containerd 2.x);
 *   2. the TSSHIM_CONFIG environment variable;
 *   3. /etc/tsshim/config.toml (absent file = defaults).
 * A file that was named explicitly must exist. A bad file is an InvalidArgument error
 * naming the file, the line (and for a syntax error the column) and what is wrong in
 * words about the file (src/shim/toml-diagnostics.ts), raised at `start` and at Create,
 * never a crash.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument } from '../core/errors.js';
import { explainTomlError, locateKey } from './toml-diagnostics.js';
import { readKataConfiguration } from '../backends/kata/kata-configuration.js';

export const DEFAULT_CONFIG_PATH = '/etc/tsshim/config.toml';
export const BACKEND_NAMES = ['runc', 'crun', 'native', 'gvisor', 'kata'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type GroupScope = 'container' | 'pod' | 'namespace';

export interface RuncLikeConfig {
  binary: string;
  /** runtime state root; the namespace is appended */
  root: string;
  systemdCgroup: boolean;
}

export const GVISOR_PLATFORMS = ['systrap', 'ptrace', 'kvm'] as const;
export type GvisorPlatform = (typeof GVISOR_PLATFORMS)[number];
export const GVISOR_NETWORKS = ['sandbox', 'host', 'none'] as const;
export type GvisorNetwork = (typeof GVISOR_NETWORKS)[number];

/** `[gvisor]`: how tsshim drives runsc (src/backends/gvisor) */
export interface GvisorConfig {
  binary: string;
  /** runsc state root; the namespace is appended */
  root: string;
  /** undefined: the best platform that boots on this host, probed once and cached */
  platform?: GvisorPlatform;
  /** undefined: `host` inside a pod's network namespace (the spec names one), else `none` */
  network?: GvisorNetwork;
  /** runsc --overlay2 value ("root:memory", "none", ...); undefined: runsc's own default */
  overlay?: string;
  /** runsc --debug-log directory or file pattern (turns --debug on); undefined: none */
  debugLog?: string;
  /** further runsc global flags, as written (`--file-access=shared`) */
  flags: string[];
  /**
   * `[runsc_config]` (gVisor's shim config format: keys are runsc flag names, values their
   * values): flags that override everything above
   */
  runscConfig: Record<string, string>;
}

export const KATA_HYPERVISORS = ['qemu', 'cloud-hypervisor', 'firecracker'] as const;
export type KataHypervisorName = (typeof KATA_HYPERVISORS)[number];
export const KATA_ACCELS = ['auto', 'kvm', 'tcg'] as const;
export type KataAccel = (typeof KATA_ACCELS)[number];

/** `[kata]`: how tsshim boots a pod's VM (src/backends/kata); unset paths: the guest tsshim builds */
export interface KataConfig {
  hypervisor: KataHypervisorName;
  /** the hypervisor binary; undefined: the hypervisor's usual name on PATH */
  hypervisorPath?: string;
  kernel?: string;
  initrd?: string;
  /** a guest disk image (Kata's `image`): not supported by this backend yet, refused at Create */
  image?: string;
  memoryMiB: number;
  vcpus: number;
  /** appended to the kernel command line */
  kernelParams: string[];
  /** appended to the hypervisor's command line */
  extraArgs: string[];
  /** `auto`: KVM when /dev/kvm boots a guest (probed once), else software emulation */
  accel: KataAccel;
  /** from starting the VM to the agent answering */
  bootTimeoutSec: number;
  /** where VM state (sockets, console log, the shared directory) lives; the namespace is appended */
  stateRoot: string;
  /** Kata's own configuration.toml: its [hypervisor.qemu] keys fill what [kata] leaves unset */
  configuration?: string;
  /** virtiofsd; undefined: the one bookworm's QEMU ships (/usr/lib/qemu/virtiofsd) */
  virtiofsd?: string;
  /** vhost-device-vsock (the guest's vsock); undefined: the one scripts/fetch-kata.sh unpacked */
  vsockDevice?: string;
  /** the guest agent's vsock port */
  agentPort: number;
}

export interface ShimConfig {
  backend: BackendName;
  shim: {
    group: GroupScope;
    socketDir: string;
    logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
    /** pod annotation allowed to name the backend (issue: per-pod backend choice) */
    backendAnnotation: string;
    /**
     * Seconds a pre-booted spare daemon waits for a `start` to adopt it before it exits
     * (src/shim/spare.ts); 0 = no spares (`spare = false`).
     */
    spareIdleSec: number;
  };
  runc: RuncLikeConfig;
  crun: RuncLikeConfig;
  native: { root: string; systemdCgroup: boolean };
  gvisor: GvisorConfig;
  kata: KataConfig;
  /** where the config came from, for messages */
  source: string;
}

/** `[shim] spare_idle` when not set */
export const DEFAULT_SPARE_IDLE_SEC = 300;
/** an upper bound, so that a typo cannot keep spares for days */
const MAX_SPARE_IDLE_SEC = 24 * 3600;

export function defaultConfig(): ShimConfig {
  return {
    // our own executor: it passes the same ctr and CRI suites as runc and crun, on
    // containerd 1.6, 1.7 and 2.1, and creates containers ~3× faster than crun
    backend: 'native',
    shim: {
      group: 'pod',
      socketDir: '/run/containerd/s',
      logLevel: 'info',
      backendAnnotation: 'io.tsshim.backend',
      // Long enough to cover the gaps of a rollout or a burst of pods, short enough that an
      // idle node does not keep a booted Node (~20 MiB RSS) around for long.
      spareIdleSec: DEFAULT_SPARE_IDLE_SEC,
    },
    runc: { binary: 'runc', root: '/run/containerd/runc', systemdCgroup: false },
    // the reference shim keeps crun's state under runc's root too (BinaryName = crun)
    crun: { binary: 'crun', root: '/run/containerd/runc', systemdCgroup: false },
    native: { root: '/run/tsshim/native', systemdCgroup: false },
    // gVisor's own shim keeps runsc's state there too
    gvisor: { binary: 'runsc', root: '/run/containerd/runsc', flags: [], runscConfig: {} },
    // Node and the agent live in the initramfs: 1 GiB leaves room for them and the workload
    kata: {
      hypervisor: 'qemu',
      memoryMiB: 1024,
      vcpus: 1,
      kernelParams: [],
      extraArgs: [],
      accel: 'auto',
      // software emulation boots in seconds, not milliseconds
      bootTimeoutSec: 120,
      stateRoot: '/run/tsshim/kata',
      agentPort: 1024,
    },
    source: 'defaults',
  };
}

export interface ConfigSource {
  /** explicit path (runtime options) */
  path?: string;
  /** raw TOML (containerd 2.x config_body) */
  body?: string;
  env?: NodeJS.ProcessEnv;
}

export function loadConfig(src: ConfigSource = {}): ShimConfig {
  const env = src.env ?? process.env;
  if (src.body && src.body.trim()) return parseConfig(src.body, 'runtime options config_body');
  const explicit = src.path || env.TSSHIM_CONFIG;
  const file = explicit || DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return defaultConfig();
    throw invalidArgument(`tsshim config ${file}: ${(err as Error).message}`, err);
  }
  return parseConfig(text, file);
}

type Table = Record<string, unknown>;

export function parseConfig(text: string, source: string): ShimConfig {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    const p = explainTomlError(text, err);
    const where = p ? `line ${p.line}, column ${p.column}: ${p.message}` : (err as Error).message.split('\n')[0];
    throw invalidArgument(`tsshim config ${source}: ${where}`, err);
  }
  const cfg = defaultConfig();
  cfg.source = source;
  /** `name` is the dotted key ("runc.root"); the line is found in the text when it can be */
  const bad = (name: string, want: string, got?: unknown) => {
    const dot = name.lastIndexOf('.');
    const line = locateKey(text, dot < 0 ? '' : name.slice(0, dot), dot < 0 ? name : name.slice(dot + 1));
    const at = line ? `line ${line}: ` : '';
    const was = got === undefined ? '' : ` (got ${describeValue(got)})`;
    return invalidArgument(`tsshim config ${source}: ${at}${name} must be ${want}${was}`);
  };
  const str = (t: Table, key: string, name: string): string | undefined => {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw bad(name, 'a string', v);
    return v;
  };
  const bool = (t: Table, key: string, name: string): boolean | undefined => {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw bad(name, 'true or false', v);
    return v;
  };
  const table = (key: string): Table => {
    const v = doc[key];
    if (v === undefined) return {};
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(key, 'a table ([' + key + '])', v);
    return v as Table;
  };

  const backend = str(doc, 'backend', 'backend');
  if (backend !== undefined) {
    if (!(BACKEND_NAMES as readonly string[]).includes(backend)) {
      throw bad('backend', `one of ${BACKEND_NAMES.map((b) => `"${b}"`).join(', ')}`, backend);
    }
    cfg.backend = backend as BackendName;
  }
  const shim = table('shim');
  const group = str(shim, 'group', 'shim.group');
  if (group !== undefined) {
    if (!['container', 'pod', 'namespace'].includes(group)) throw bad('shim.group', '"container", "pod" or "namespace"', group);
    cfg.shim.group = group as GroupScope;
  }
  const socketDir = str(shim, 'socket_dir', 'shim.socket_dir');
  if (socketDir !== undefined) {
    if (!socketDir.startsWith('/')) throw bad('shim.socket_dir', 'an absolute path', socketDir);
    // 64 hex chars + separator must still fit in sun_path (108 bytes)
    if (socketDir.length > 42) throw bad('shim.socket_dir', 'at most 42 characters long');
    cfg.shim.socketDir = socketDir;
  }
  const level = str(shim, 'log_level', 'shim.log_level');
  if (level !== undefined) {
    if (!['trace', 'debug', 'info', 'warn', 'error'].includes(level)) throw bad('shim.log_level', 'trace, debug, info, warn or error', level);
    cfg.shim.logLevel = level as ShimConfig['shim']['logLevel'];
  }
  const ann = str(shim, 'backend_annotation', 'shim.backend_annotation');
  if (ann !== undefined) cfg.shim.backendAnnotation = ann;
  const spareIdle = shim.spare_idle;
  if (spareIdle !== undefined) {
    if (typeof spareIdle !== 'number' || !Number.isInteger(spareIdle) || spareIdle < 0 || spareIdle > MAX_SPARE_IDLE_SEC) {
      throw bad('shim.spare_idle', `a whole number of seconds from 0 to ${MAX_SPARE_IDLE_SEC}`, spareIdle);
    }
    cfg.shim.spareIdleSec = spareIdle;
  }
  if (bool(shim, 'spare', 'shim.spare') === false) cfg.shim.spareIdleSec = 0;

  for (const name of ['runc', 'crun'] as const) {
    const t = table(name);
    const binary = str(t, 'binary', `${name}.binary`);
    if (binary !== undefined) {
      if (!binary) throw bad(`${name}.binary`, 'a non-empty string');
      cfg[name].binary = binary;
    }
    const root = str(t, 'root', `${name}.root`);
    if (root !== undefined) {
      if (!root.startsWith('/')) throw bad(`${name}.root`, 'an absolute path', root);
      cfg[name].root = root;
    }
    const sd = bool(t, 'systemd_cgroup', `${name}.systemd_cgroup`);
    if (sd !== undefined) cfg[name].systemdCgroup = sd;
  }
  const native = table('native');
  const nativeRoot = str(native, 'root', 'native.root');
  if (nativeRoot !== undefined) {
    if (!nativeRoot.startsWith('/')) throw bad('native.root', 'an absolute path', nativeRoot);
    cfg.native.root = nativeRoot;
  }
  const nativeSd = bool(native, 'systemd_cgroup', 'native.systemd_cgroup');
  if (nativeSd !== undefined) cfg.native.systemdCgroup = nativeSd;

  const gvisor = table('gvisor');
  const gBinary = str(gvisor, 'binary', 'gvisor.binary');
  if (gBinary !== undefined) {
    if (!gBinary) throw bad('gvisor.binary', 'a non-empty string');
    cfg.gvisor.binary = gBinary;
  }
  const gRoot = str(gvisor, 'root', 'gvisor.root');
  if (gRoot !== undefined) {
    if (!gRoot.startsWith('/')) throw bad('gvisor.root', 'an absolute path');
    cfg.gvisor.root = gRoot;
  }
  const platform = str(gvisor, 'platform', 'gvisor.platform');
  if (platform !== undefined) {
    if (!(GVISOR_PLATFORMS as readonly string[]).includes(platform)) {
      throw bad('gvisor.platform', `one of ${GVISOR_PLATFORMS.map((p) => `"${p}"`).join(', ')} (got "${platform}")`);
    }
    cfg.gvisor.platform = platform as GvisorPlatform;
  }
  const network = str(gvisor, 'network', 'gvisor.network');
  if (network !== undefined) {
    if (!(GVISOR_NETWORKS as readonly string[]).includes(network)) {
      throw bad('gvisor.network', `one of ${GVISOR_NETWORKS.map((n) => `"${n}"`).join(', ')} (got "${network}")`);
    }
    cfg.gvisor.network = network as GvisorNetwork;
  }
  const overlay = str(gvisor, 'overlay', 'gvisor.overlay');
  if (overlay !== undefined) cfg.gvisor.overlay = overlay;
  const debugLog = str(gvisor, 'debug_log', 'gvisor.debug_log');
  if (debugLog !== undefined) cfg.gvisor.debugLog = debugLog;
  const flags = gvisor.flags;
  if (flags !== undefined) {
    if (!Array.isArray(flags) || !flags.every((f) => typeof f === 'string' && f.startsWith('-'))) {
      throw bad('gvisor.flags', 'an array of runsc flags ("--name=value")');
    }
    cfg.gvisor.flags = flags as string[];
  }
  // gVisor's shim format, so a handler's existing runsc config works unchanged
  const runscConfig = table('runsc_config');
  for (const [key, value] of Object.entries(runscConfig)) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(key)) throw bad(`runsc_config.${key}`, 'named like a runsc flag');
    if (typeof value !== 'string' && typeof value !== 'boolean' && typeof value !== 'number') {
      throw bad(`runsc_config.${key}`, 'a string, number or boolean');
    }
    cfg.gvisor.runscConfig[key] = String(value);
  }

  const kata = table('kata');
  const hv = str(kata, 'hypervisor', 'kata.hypervisor');
  if (hv !== undefined) {
    if (!(KATA_HYPERVISORS as readonly string[]).includes(hv)) {
      throw bad('kata.hypervisor', `one of ${KATA_HYPERVISORS.map((h) => `"${h}"`).join(', ')}`, hv);
    }
    cfg.kata.hypervisor = hv as KataHypervisorName;
  }
  for (const [key, field] of [
    ['hypervisor_path', 'hypervisorPath'],
    ['kernel', 'kernel'],
    ['initrd', 'initrd'],
    ['image', 'image'],
    ['configuration', 'configuration'],
    ['state_root', 'stateRoot'],
    ['virtiofsd', 'virtiofsd'],
    ['vsock_device', 'vsockDevice'],
  ] as const) {
    const v = str(kata, key, `kata.${key}`);
    if (v === undefined) continue;
    if (!v.startsWith('/')) throw bad(`kata.${key}`, 'an absolute path', v);
    cfg.kata[field] = v;
  }
  const whole = (key: string, min: number, max: number): number | undefined => {
    const v = kata[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`kata.${key}`, `a whole number from ${min} to ${max}`, v);
    return v;
  };
  cfg.kata.memoryMiB = whole('memory', 128, 1024 * 1024) ?? cfg.kata.memoryMiB;
  cfg.kata.vcpus = whole('vcpus', 1, 256) ?? cfg.kata.vcpus;
  cfg.kata.bootTimeoutSec = whole('boot_timeout', 1, 3600) ?? cfg.kata.bootTimeoutSec;
  cfg.kata.agentPort = whole('agent_port', 1, 0xffffffff - 1) ?? cfg.kata.agentPort;
  for (const [key, field] of [
    ['kernel_params', 'kernelParams'],
    ['extra_args', 'extraArgs'],
  ] as const) {
    const v = kata[key];
    if (v === undefined) continue;
    if (!Array.isArray(v) || !v.every((a) => typeof a === 'string')) throw bad(`kata.${key}`, 'an array of strings', v);
    cfg.kata[field] = v as string[];
  }
  const accel = str(kata, 'accel', 'kata.accel');
  if (accel !== undefined) {
    if (!(KATA_ACCELS as readonly string[]).includes(accel)) throw bad('kata.accel', `one of ${KATA_ACCELS.map((a) => `"${a}"`).join(', ')}`, accel);
    cfg.kata.accel = accel as KataAccel;
  }
  if (cfg.kata.configuration) {
    // Kata's file fills only what [kata] leaves unset
    const fromFile = readKataConfiguration(cfg.kata.configuration);
    const explicit: Record<string, string> = {
      hypervisor: 'hypervisor', hypervisorPath: 'hypervisor_path', kernel: 'kernel', initrd: 'initrd',
      image: 'image', memoryMiB: 'memory', vcpus: 'vcpus', kernelParams: 'kernel_params', virtiofsd: 'virtiofsd',
    };
    for (const [field, value] of Object.entries(fromFile)) {
      if (kata[explicit[field]!] === undefined) (cfg.kata as unknown as Record<string, unknown>)[field] = value;
    }
  }
  return cfg;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'object' && v !== null) return 'a table';
  return String(v);
}
