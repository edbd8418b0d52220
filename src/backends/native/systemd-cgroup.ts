/**
 * The systemd cgroup driver of the native backend, as runc's and crun's: the container's
 * cgroup is a transient scope unit (`<prefix>-<name>.scope` in its slice) that systemd makes
 * with Delegate=yes, so systemd knows the cgroup is the container's and leaves what is
 * below it alone. Resources are set twice, as runc does: as unit properties (systemd writes
 * them again on every daemon-reload, so they must agree with the container's) and in the
 * cgroup files (everything systemd has no property for: swappiness, cpusets on v1, hugetlb,
 * device rules as enforced, ...).
 *
 * systemd refuses a scope without a process, and the container's init does not exist yet
 * when the scope must: the scope is started with the native helper's pid, and the
 * container process the helper clones starts in it (and is placed there explicitly as well,
 * in every hierarchy, by the helper's usual placement). The helper leaves when create is
 * done; the scope then holds the container's processes only.
 *
 * The D-Bus client (src/sys/systemd-manager.ts, with dbus-native) is loaded on first use:
 * most shims never take this path.
 */
import { readFileSync } from 'node:fs';
import type { CgroupLayout } from '../../sys/cgroups.js';
import type { SystemdManager, SystemdManagerOptions, UnitProperty } from '../../sys/systemd-manager.js';
import { effectiveDeviceRules, sharesToWeight } from './cgroup-manager.js';
import type { SystemdUnitPlace } from './cgroup-path.js';
import type { OciDeviceRule, OciResources } from './spec.js';

/** USEC_INFINITY / "infinity" for a uint64 property */
const INFINITY = (1n << 64n) - 1n;
const DEFAULT_CPU_PERIOD = 100_000n;

type Prop = UnitProperty;
const p = (name: string, signature: string, value: unknown): Prop => ({ name, signature, value });

/**
 * CPUQuotaPerSecUSec from an OCI quota and period: systemd keeps a whole percentage of a
 * CPU, so a quota that is not one is rounded up to the next 10 ms per second (as runc does,
 * so that the cfs_quota_us systemd writes is never below the container's).
 */
export function cpuQuotaPerSecUSec(quota: bigint | undefined, period: bigint | undefined): bigint | undefined {
  if (!quota && !period) return undefined;
  if (quota === undefined || quota <= 0n) return INFINITY;
  let v = (quota * 1_000_000n) / (period || DEFAULT_CPU_PERIOD);
  if (v % 10_000n !== 0n) v = (v / 10_000n + 1n) * 10_000n;
  return v;
}

function limitOrInfinity(v: bigint): bigint {
  return v < 0n || v >= INFINITY ? INFINITY : v;
}

/** unit properties for the resources systemd knows, for the cgroup version of this host */
export function resourceProperties(r: OciResources | undefined, mode: CgroupLayout['mode']): Prop[] {
  if (!r) return [];
  const out: Prop[] = [];
  const v2 = mode === 'v2';
  const m = r.memory;
  if (m?.limit !== undefined && m.limit !== 0n) out.push(p(v2 ? 'MemoryMax' : 'MemoryLimit', 't', limitOrInfinity(m.limit)));
  if (v2 && m?.reservation !== undefined && m.reservation !== 0n) out.push(p('MemoryLow', 't', limitOrInfinity(m.reservation)));
  if (v2 && m?.swap !== undefined && m.swap !== 0n) {
    // OCI swap is memory+swap; systemd's MemorySwapMax is swap alone
    const swapOnly = m.swap < 0n ? INFINITY : m.limit !== undefined && m.limit > 0n ? m.swap - m.limit : m.swap;
    if (swapOnly >= 0n) out.push(p('MemorySwapMax', 't', swapOnly));
  }
  const c = r.cpu;
  if (c?.shares) out.push(v2 ? p('CPUWeight', 't', sharesToWeight(c.shares)) : p('CPUShares', 't', c.shares));
  if (c?.period) out.push(p('CPUQuotaPeriodUSec', 't', c.period));
  const perSec = cpuQuotaPerSecUSec(c?.quota, c?.period);
  if (perSec !== undefined) out.push(p('CPUQuotaPerSecUSec', 't', perSec));
  if (r.pids) out.push(p('TasksMax', 't', r.pids.limit > 0n ? r.pids.limit : INFINITY));
  if (!v2 && r.blockIO?.weight) out.push(p('BlockIOWeight', 't', BigInt(r.blockIO.weight)));
  return out;
}

/** device groups of /proc/devices: "char-pts" for major 136, ... */
function deviceGroups(): Map<string, string> {
  const groups = new Map<string, string>();
  let kind = '';
  let text = '';
  try {
    text = readFileSync('/proc/devices', 'utf8');
  } catch {
    return groups;
  }
  for (const line of text.split('\n')) {
    if (line.startsWith('Character')) kind = 'char';
    else if (line.startsWith('Block')) kind = 'block';
    else {
      const m = /^\s*(\d+)\s+(\S+)/.exec(line);
      if (m && kind) groups.set(`${kind}:${m[1]}`, `${kind}-${m[2]}`);
    }
  }
  return groups;
}

/**
 * DevicePolicy and DeviceAllow for the container's rules, so that systemd, when it applies
 * the unit's settings again, never opens what the rules close. undefined when systemd
 * cannot say the same thing (a deny after an allow, a wildcard major with a given minor):
 * systemd is then left at its default, which on cgroup v1 allows everything on a reload,
 * and the caller warns.
 */
export function deviceProperties(rules: OciDeviceRule[], groups: () => Map<string, string> = deviceGroups): Prop[] | undefined {
  const effective = effectiveDeviceRules(rules);
  let i = 0;
  // containerd and kubelet start with "deny all": systemd's strict policy is that
  while (i < effective.length && !effective[i]!.allow && effective[i]!.type === 'a') i++;
  const allows: Array<[string, string]> = [];
  for (const rule of effective.slice(i)) {
    if (!rule.allow) return undefined;
    if (rule.type === 'a') return []; // everything allowed: nothing for systemd to enforce
    const kind = rule.type === 'b' ? 'block' : 'char';
    let path: string | undefined;
    if (rule.major < 0 && rule.minor < 0) path = `${kind}-*`;
    else if (rule.major < 0) return undefined;
    else if (rule.minor < 0) path = groups().get(`${kind}:${rule.major}`);
    else path = `/dev/${kind}/${rule.major}:${rule.minor}`;
    // a major no driver has registered: nothing of it can exist to allow
    if (path === undefined) continue;
    allows.push([path, rule.access || 'rwm']);
  }
  return [p('DevicePolicy', 's', 'strict'), p('DeviceAllow', 'a(ss)', allows)];
}

export interface ScopeRequest {
  id: string;
  place: SystemdUnitPlace;
  /** the process the scope is started with (the native helper) */
  pid: number;
  resources: OciResources | undefined;
  mode: CgroupLayout['mode'];
  onWarning?: (message: string) => void;
}

/** Starts, changes and stops containers' scope units; each operation on its own connection. */
export class SystemdCgroupDriver {
  constructor(private readonly options: SystemdManagerOptions = {}) {}

  private async withManager<T>(fn: (m: SystemdManager) => Promise<T>): Promise<T> {
    const { SystemdManager } = await import('../../sys/systemd-manager.js');
    const manager = await SystemdManager.connect(this.options);
    try {
      return await fn(manager);
    } finally {
      manager.close();
    }
  }

  async start(req: ScopeRequest): Promise<void> {
    const props: Prop[] = [
      p('Description', 's', `tsshim container ${req.id}`),
      p('PIDs', 'au', [req.pid]),
      // the container's cgroup is the container's: systemd must not touch below it
      p('Delegate', 'b', true),
      p('DefaultDependencies', 'b', false),
      p('MemoryAccounting', 'b', true),
      p('CPUAccounting', 'b', true),
      p('TasksAccounting', 'b', true),
      p(req.mode === 'v2' ? 'IOAccounting' : 'BlockIOAccounting', 'b', true),
    ];
    if (req.place.unit.endsWith('.scope')) props.push(p('Slice', 's', req.place.slice));
    props.push(...resourceProperties(req.resources, req.mode));
    const devices = deviceProperties(req.resources?.devices ?? []);
    if (devices) props.push(...devices);
    else req.onWarning?.('linux.resources.devices: these rules cannot be given to systemd as DevicePolicy/DeviceAllow; they are enforced in the cgroup only');
    await this.withManager(async (m) => {
      // a unit of this name that failed earlier stays loaded until reset
      await m.resetFailedUnit(req.place.unit);
      await m.startTransientUnit(req.place.unit, props);
    });
  }

  /** Update: the new values as runtime properties, so a reload keeps them */
  async update(unit: string, resources: OciResources, mode: CgroupLayout['mode']): Promise<void> {
    const props = resourceProperties(resources, mode);
    if (props.length === 0) return;
    await this.withManager((m) => m.setUnitProperties(unit, props));
  }

  /** stops the unit (its processes are gone or killed by then) and forgets a failed one */
  async stop(unit: string): Promise<void> {
    await this.withManager(async (m) => {
      await m.stopUnit(unit);
      await m.resetFailedUnit(unit);
    });
  }
}
