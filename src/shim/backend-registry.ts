/**
 * Which backend runs a container, decided once at Create, first match wins:
 *   1. the allow-listed pod/container annotation (config `shim.backend_annotation`);
 *   2. the shim binary's alias (`containerd-shim-tsshim-<backend>-v2`);
 *   3. runc options' BinaryName (a runc-compatible CLI by name, e.g. "crun");
 *   4. the config's `backend`.
 * Backend instances are shared by every container with the same settings. Backend modules are
 * loaded on first use: a daemon running only native containers never loads execa and the
 * runc CLI wrapper (less to compile and keep on the boot path).
 */
import { basename, join } from 'node:path';
import type { Backend, ExitSource } from '../core/backend.js';
import { invalidArgument, unimplemented } from '../core/errors.js';
import type { CreateTaskInput } from '../core/task-core.js';
import { BACKEND_NAMES, type BackendName, type ShimConfig, loadConfig } from './config.js';
import { writeBundleState } from './bundle-state.js';

/** a warning about one container's config: its id, the field and what was done about it */
export interface BackendWarning {
  id: string;
  field: string;
  message: string;
}

export class BackendRegistry {
  private readonly instances = new Map<string, Backend>();
  private readonly configs = new Map<string, ShimConfig>();

  constructor(
    private readonly daemonConfig: ShimConfig,
    private readonly namespace: string,
    private readonly exits: ExitSource,
    /** backend named by the binary's alias, if any */
    private readonly alias: BackendName | undefined,
    /** a config field a backend accepted with a caveat (runc logs these as warnings too) */
    private readonly onWarning?: (w: BackendWarning) => void,
  ) {}

  /** the config a container runs under: the one its runtime options name, else the daemon's */
  configFor(input: { configPath?: string; configBody?: string }): ShimConfig {
    if (!input.configPath && !input.configBody) return this.daemonConfig;
    const key = input.configBody ? `body:${input.configBody}` : `path:${input.configPath}`;
    let cfg = this.configs.get(key);
    if (!cfg) {
      cfg = loadConfig({ path: input.configPath, body: input.configBody });
      this.configs.set(key, cfg);
    }
    return cfg;
  }

  async select(input: CreateTaskInput, annotations: Record<string, string>): Promise<Backend> {
    const config = this.configFor(input);
    const fromAnnotation = annotations[config.shim.backendAnnotation];
    if (fromAnnotation !== undefined && !(BACKEND_NAMES as readonly string[]).includes(fromAnnotation)) {
      throw invalidArgument(
        `annotation ${config.shim.backendAnnotation}="${fromAnnotation}" names no backend (one of ${BACKEND_NAMES.join(', ')})`,
      );
    }
    const { name, binary } = chooseBackend({
      annotation: fromAnnotation as BackendName | undefined,
      alias: this.alias,
      binaryName: input.options.binaryName,
      config,
    });
    switch (name) {
      case 'runc':
      case 'crun': {
        const table = config[name];
        const root = join(input.options.root || table.root, this.namespace);
        const bin = binary ?? table.binary;
        const systemd = input.options.systemdCgroup || table.systemdCgroup;
        const key = `${name}|${bin}|${root}|${systemd}`;
        let b = this.instances.get(key);
        if (b === undefined) {
          const { RuncBackend } = await import('../backends/runc/backend.js');
          // another Create may have made it while the module loaded
          b = this.instances.get(key) ?? (new RuncBackend({ name, binary: bin, root, systemdCgroup: systemd, exits: this.exits }) as Backend);
          this.instances.set(key, b);
        }
        // for the `delete` action, which runs without this process's memory
        writeBundleState(input.bundle, { backend: name, binary: bin, root, systemdCgroup: systemd });
        return b;
      }
      case 'native': {
        const root = join(input.options.root || config.native.root, this.namespace);
        const systemd = input.options.systemdCgroup || config.native.systemdCgroup;
        const key = `native|${root}|${systemd}`;
        let b = this.instances.get(key);
        if (b === undefined) {
          const { NativeBackend } = await import('../backends/native/backend.js');
          b = this.instances.get(key) ?? new NativeBackend({ root, systemdCgroup: systemd, exits: this.exits, onWarning: this.onWarning });
          this.instances.set(key, b);
        }
        writeBundleState(input.bundle, { backend: 'native', binary: '', root, systemdCgroup: systemd });
        return b;
      }
      case 'gvisor': {
        const table = config.gvisor;
        const root = join(input.options.root || table.root, this.namespace);
        // one backend per distinct runsc setup; the handler's [runsc_config] is part of it
        const key = `gvisor|${root}|${JSON.stringify(table)}`;
        let b = this.instances.get(key);
        if (b === undefined) {
          const { GvisorBackend } = await import('../backends/gvisor/backend.js');
          b = this.instances.get(key) ?? new GvisorBackend({ config: table, root, exits: this.exits });
          this.instances.set(key, b);
        }
        writeBundleState(input.bundle, { backend: 'gvisor', binary: input.options.binaryName || table.binary, root, systemdCgroup: false });
        return b;
      }
      case 'kata': {
        const table = config.kata;
        // one backend per distinct VM setup (the VMs it boots share nothing else)
        const key = `kata|${JSON.stringify(table)}`;
        let b = this.instances.get(key);
        if (b === undefined) {
          const { KataBackend } = await import('../backends/kata/backend.js');
          b = this.instances.get(key) ?? new KataBackend({ config: table, namespace: this.namespace, exits: this.exits });
          this.instances.set(key, b);
        }
        // the backend writes the bundle state itself: only it knows the VM's state directory
        return b;
      }
      default:
        throw unimplemented(`backend "${name}" is not implemented yet in this tsshim build`);
    }
  }
}

/**
 * The backend rule above as a pure function (steps 1-4), shared by Create and `-info`, so
 * that the features containerd introspects are those of the backend that will run the
 * containers. `binary` is set when runc options' BinaryName made the choice.
 */
export function chooseBackend(input: {
  annotation?: BackendName;
  alias?: BackendName;
  binaryName?: string;
  config: ShimConfig;
}): { name: BackendName; binary?: string } {
  if (input.annotation !== undefined) return { name: input.annotation };
  if (input.alias) return { name: input.alias };
  if (input.binaryName) return { name: basename(input.binaryName) === 'crun' ? 'crun' : 'runc', binary: input.binaryName };
  return { name: input.config.backend };
}

/** `containerd-shim-tsshim-crun-v2` → "crun" */
export function aliasFromBinary(argv1: string | undefined): BackendName | undefined {
  const m = /^containerd-shim-tsshim-([a-z]+)-v2$/.exec(basename(argv1 ?? ''));
  const name = m?.[1];
  return name && (BACKEND_NAMES as readonly string[]).includes(name) ? (name as BackendName) : undefined;
}
