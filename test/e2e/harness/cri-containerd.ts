/**
 * A private containerd with its CRI plugin on, ready for pods: a private CNI network
 * (cni-network.ts), restrict_oom_score_adj, the locally built busybox and pause images imported
 * into k8s.io (pause is the sandbox image), netns under the state dir, and runtime handlers:
 *
 *   runc               io.containerd.runc.v2, runc state under cd.runtimeRoot (the reference)
 *   tsshim             io.containerd.tsshim.v2, options.ConfigPath = tsshim TOML (backend runc),
 *                      pod_annotations = ["io.tsshim.*"] so the backend annotation reaches it
 *   tsshim-crun        same, ConfigPath = TOML with backend "crun"
 *   tsshim-native      same, ConfigPath = TOML with backend "native" (our own executor)
 *   tsshim-shared      native too, with [shim] group = "namespace": one shim for every pod
 *   tsshim-noann       like tsshim, without pod_annotations (the annotation must NOT reach it)
 *   tsshim-alias-runc  io.containerd.tsshim-runc.v2 (alias link), ConfigPath of tsshim-crun
 *   tsshim-alias-crun  io.containerd.tsshim-crun.v2 (alias link), ConfigPath of tsshim
 *   tsshim-runc-typed  runtime_type io.containerd.runc.v2 with runtime_path = the tsshim binary,
 *                      options BinaryName "runc" (backend runc), Root = the runc root: the
 *                      form containerd 2.0/2.1's CRI introspects (-info) for its features
 *   tsshim-native-runc-typed  same form, runtime_path = the native alias link (backend native),
 *                      Root = the native root
 *
 * The runc-typed handlers carry runc options, so no ConfigPath reaches tsshim: it reads its
 * default config (none on a test machine: the defaults), the options' Root and BinaryName.
 *   tsshim-gvisor      io.containerd.tsshim-gvisor.v2 (alias link), ConfigPath = TOML with a
 *                      [gvisor] table and gVisor's own [runsc_config] (runsc state: <dir>/runsc)
 *   tsshim-kata        io.containerd.tsshim-kata.v2 (alias link), ConfigPath = TOML with [kata]
 *                      state_root = <dir>/kata (the guest the project builds, QEMU)
 *   runsc              the gVisor reference: io.containerd.runc.v2 with BinaryName = a wrapper
 *                      adding runsc's flags (network host: the pod's netns), Root <dir>/runsc-ref
 *   runsc-pod          the same with runscPodReferenceWrapper: what the runc shim needs to drive
 *                      a gVisor pod far enough to time its start (the bench's pod reference)
 *
 * Backends keep their state in separate roots (runc: cd.runtimeRoot, crun: <dir>/crun, native:
 * <dir>/native), so a
 * test can tell which backend runs a container. containerd 1.7/2.x write OCI spec 1.2, which
 * crun 1.8.1 rejects: there the "crun" backend is configured with binary = "runc" (same slot,
 * same state root, a binary that works), which still proves the choice of backend.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { configCachePath } from '../../../src/shim/config-cache.js';
import { join } from 'node:path';
import { createCniNetwork, type CniNetwork } from './cni-network.js';
import { crunUsableWith, type ContainerdLine } from './containerd-versions.js';
import { CriClient } from './cri-api.js';
import { PrivateContainerd, type CriRuntime } from './private-containerd.js';
import { cacheDir, shimBinDir, tsshimBinary } from './repo-paths.js';
import { RUNSC_DEBIAN, gvisorConfigToml, runscPodReferenceWrapper, runscWrapper, type RunscBuild } from '../gvisor-flags.js';

export const TSSHIM_BACKEND_ANNOTATION = 'io.tsshim.backend';
const CNI_RESULTS_DIR = '/var/lib/cni/results';
export const TSSHIM_RUNTIME_TYPE = 'io.containerd.tsshim.v2';
/**
 * Directory with the alias links containerd-shim-tsshim-<backend>-v2 → the tsshim binary under
 * test (one dir per target, so runs against different builds never rewrite each other's links).
 */
export const aliasLinkDir = join(cacheDir, 'shim-aliases', createHash('sha256').update(tsshimBinary).digest('hex').slice(0, 12));

export type CriHandler =
  | 'runc'
  | 'tsshim'
  | 'tsshim-crun'
  | 'tsshim-native'
  | 'tsshim-shared'
  | 'tsshim-noann'
  | 'tsshim-alias-runc'
  | 'tsshim-alias-crun'
  | 'tsshim-runc-typed'
  | 'tsshim-native-runc-typed'
  | 'tsshim-gvisor'
  | 'tsshim-kata'
  | 'runsc'
  | 'runsc-pod';

export interface CriContainerd {
  cd: PrivateContainerd;
  cri: CriClient;
  network: CniNetwork;
  line: ContainerdLine;
  /** State root per backend name: a container's state dir appears under <root>/k8s.io/<id>. */
  backendRoots: BackendRoots;
  /** Whether the "crun" backend really runs crun (false: runc binary in the crun slot). */
  realCrun: boolean;
  /** Pods' cgroup_parent for pod `name` (under the instance's cgroupRoot). */
  cgroupParent(name: string): string;
  /** Directory for pod `name`'s CRI container logs. */
  logDirectory(name: string): string;
}

export interface CriContainerdOptions {
  line: ContainerdLine;
  /** the runsc the gVisor handlers run (default: bookworm's) */
  runsc?: RunscBuild;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** containerd in a cgroup of its own under the instance's cgroup root (PrivateContainerdOptions.daemonCgroup) */
  daemonCgroup?: boolean;
  /** every handler with the systemd cgroup driver: runc's SystemdCgroup option, tsshim's systemd_cgroup */
  systemdCgroup?: boolean;
  /** the instance's cgroup root (default: a random tsecri-<hex>) */
  cgroupRoot?: string;
  /**
   * containerd's PATH before basePath; default the checkout's shim bin dir and the alias
   * links (an installed tsshim: [PREFIX/bin], whose aliases are installed with it)
   */
  pathPrefix?: string[];
  /** see PrivateContainerdOptions.basePath */
  basePath?: string;
}

/** Files libcni cached for a sandbox (any network): gone once CNI DEL ran for it. */
export function cniResultsOf(sandboxId: string): string[] {
  try {
    return readdirSync(CNI_RESULTS_DIR)
      .filter((f) => f.includes(`-${sandboxId}-`))
      .map((f) => join(CNI_RESULTS_DIR, f));
  } catch {
    return [];
  }
}

/** Creates (idempotently) the alias links the alias handlers need, next to nothing else. */
export function ensureAliasLinks(): string {
  mkdirSync(aliasLinkDir, { recursive: true });
  for (const backend of ['runc', 'crun', 'native', 'gvisor', 'kata']) {
    const link = join(aliasLinkDir, `containerd-shim-tsshim-${backend}-v2`);
    let current: string | undefined;
    try {
      current = readlinkSync(link);
    } catch {
      current = undefined;
    }
    if (current === tsshimBinary) continue;
    rmSync(link, { force: true });
    symlinkSync(tsshimBinary, link);
  }
  return aliasLinkDir;
}

type BackendRoots = { runc: string; crun: string; native: string };

function tsshimToml(backend: keyof BackendRoots, roots: BackendRoots, crunBinary: string, group?: 'namespace', systemdCgroup = false): string {
  const sd = systemdCgroup ? ['systemd_cgroup = true'] : [];
  return [
    `backend = "${backend}"`,
    '[shim]',
    `backend_annotation = "${TSSHIM_BACKEND_ANNOTATION}"`,
    ...(group ? [`group = "${group}"`] : []),
    '[runc]',
    `root = "${roots.runc}"`,
    ...sd,
    '[crun]',
    `root = "${roots.crun}"`,
    `binary = "${crunBinary}"`,
    ...sd,
    '[native]',
    `root = "${roots.native}"`,
    ...sd,
    '',
  ].join('\n');
}

export async function launchCriContainerd(options: CriContainerdOptions): Promise<CriContainerd> {
  const realCrun = crunUsableWith(options.line);
  const gvisorBuild = options.runsc ?? RUNSC_DEBIAN;
  const paths = (cd: PrivateContainerd) => ({
    roots: { runc: cd.runtimeRoot, crun: join(cd.dir, 'crun'), native: join(cd.dir, 'native') },
    configs: {
      runc: join(cd.dir, 'tsshim-runc.toml'),
      crun: join(cd.dir, 'tsshim-crun.toml'),
      native: join(cd.dir, 'tsshim-native.toml'),
      shared: join(cd.dir, 'tsshim-shared.toml'),
      gvisor: join(cd.dir, 'tsshim-gvisor.toml'),
      kata: join(cd.dir, 'tsshim-kata.toml'),
    },
  });
  const runtimes = (cd: PrivateContainerd): Record<CriHandler, CriRuntime> => {
    const { configs, roots } = paths(cd);
    const tsshim = (configPath: string, podAnnotations: boolean, runtimeType = TSSHIM_RUNTIME_TYPE): CriRuntime => ({
      runtimeType,
      options: { ConfigPath: configPath },
      ...(podAnnotations ? { podAnnotations: ['io.tsshim.*'] } : {}),
    });
    return {
      runc: { runtimeType: 'io.containerd.runc.v2', options: { Root: cd.runtimeRoot, ...(options.systemdCgroup ? { SystemdCgroup: true } : {}) } },
      tsshim: tsshim(configs.runc, true),
      'tsshim-crun': tsshim(configs.crun, true),
      'tsshim-native': tsshim(configs.native, true),
      'tsshim-shared': tsshim(configs.shared, true),
      'tsshim-noann': tsshim(configs.runc, false),
      'tsshim-alias-runc': tsshim(configs.crun, true, 'io.containerd.tsshim-runc.v2'),
      'tsshim-alias-crun': tsshim(configs.runc, true, 'io.containerd.tsshim-crun.v2'),
      'tsshim-runc-typed': {
        runtimeType: 'io.containerd.runc.v2',
        runtimePath: tsshimBinary,
        options: { BinaryName: 'runc', Root: roots.runc },
      },
      'tsshim-native-runc-typed': {
        runtimeType: 'io.containerd.runc.v2',
        runtimePath: join(aliasLinkDir, 'containerd-shim-tsshim-native-v2'),
        options: { Root: roots.native },
      },
      'tsshim-gvisor': tsshim(configs.gvisor, true, 'io.containerd.tsshim-gvisor.v2'),
      'tsshim-kata': tsshim(configs.kata, true, 'io.containerd.tsshim-kata.v2'),
      runsc: { runtimeType: 'io.containerd.runc.v2', options: { BinaryName: runscWrapper(cd, gvisorBuild, 'host'), Root: join(cd.dir, 'runsc-ref') } },
      'runsc-pod': { runtimeType: 'io.containerd.runc.v2', options: { BinaryName: runscPodReferenceWrapper(cd, gvisorBuild), Root: join(cd.dir, 'runsc-ref') } },
    };
  };

  const cd = PrivateContainerd.create({
    version: options.line,
    namespace: 'k8s.io',
    cgroupRoot: options.cgroupRoot ?? `tsecri-${randomBytes(3).toString('hex')}`,
    daemonCgroup: options.daemonCgroup,
    logLevel: options.logLevel ?? 'debug',
    pathPrefix: options.pathPrefix ?? [shimBinDir, ensureAliasLinks()],
    ...(options.basePath ? { basePath: options.basePath } : {}),
    cri: { runtimes, defaultRuntime: 'runc' },
  });
  const { roots, configs } = paths(cd);
  mkdirSync(roots.crun, { recursive: true });
  mkdirSync(roots.native, { recursive: true });
  const crunBinary = realCrun ? 'crun' : 'runc';
  writeFileSync(configs.runc, tsshimToml('runc', roots, crunBinary, undefined, options.systemdCgroup));
  writeFileSync(configs.crun, tsshimToml('crun', roots, crunBinary, undefined, options.systemdCgroup));
  writeFileSync(configs.native, tsshimToml('native', roots, crunBinary, undefined, options.systemdCgroup));
  writeFileSync(configs.shared, tsshimToml('native', roots, crunBinary, 'namespace', options.systemdCgroup));
  writeFileSync(configs.kata, `backend = "kata"\n[kata]\nstate_root = "${join(cd.dir, 'kata')}"\nboot_timeout = 240\n`);
  // the platform in gVisor's shim format ([runsc_config]), the rest in tsshim's [gvisor]
  writeFileSync(
    configs.gvisor,
    `${gvisorConfigToml(cd, gvisorBuild, { probePlatform: true })}[runsc_config]\nplatform = "${gvisorBuild.platform}"\n`,
  );
  // the fingerprints tsshim's start leaves in the socket dir go with these config files
  cd.addCleanup('afterStop', async () => {
    for (const file of Object.values(configs)) rmSync(configCachePath(file), { force: true });
  });

  const cri = new CriClient(cd.address);
  cd.addCleanup('beforeStop', () => cri.removeAllPods());
  try {
    const network = await createCniNetwork(cd.dir);
    cd.addCleanup('afterStop', async () => {
      cri.close();
      for (const id of cri.sandboxesCreated) {
        const socket = cd.shimSocketPath(id);
        if (existsSync(socket)) rmSync(socket, { force: true });
        // libcni's cache of containerd's own loopback network, left when a pod's teardown failed
        for (const file of cniResultsOf(id)) rmSync(file, { force: true });
      }
      return network.destroy();
    });
    await cd.start();
    await cd.importTestImages();
    return {
      cd,
      cri,
      network,
      line: options.line,
      backendRoots: roots,
      realCrun,
      cgroupParent: (name) => `/${cd.cgroupRoot}/${name}`,
      logDirectory: (name) => join(cd.dir, 'pod-logs', name),
    };
  } catch (err) {
    await cd.destroy();
    cri.close();
    throw err;
  }
}
