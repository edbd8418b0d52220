/**
 * A pod's network for its VM, the way Kata does it by default (tc mirred): inside the pod's
 * network namespace, a tap device for QEMU joined to the pod's interface (the CNI veth) by
 * two tc redirections, one each way. The guest's interface gets the veth's MAC, addresses
 * and routes from the agent (UpdateInterface, UpdateRoutes), so the pod IP answers from the
 * host as any pod's does, and the veth itself keeps no address traffic stops at.
 *
 * Privileged work happens in `ip` and `tc` run inside the namespace (nsenter), each with a
 * deadline; nothing here changes the shim's own namespaces.
 */
import { failedPrecondition, internal } from '../../core/errors.js';
import { Reaper } from '../../sys/reaper.js';
import { execaCommand, type RuntimeCommand } from '../runc/cli.js';
import { PosixSpawnCommand } from '../runc/spawn-command.js';
import { IPFamily, type Interface, type Route } from '../../proto/gen/kata/types.js';

/** Kata's name for the tap of the first interface */
export const POD_TAP = 'tap0_kata';
const CALL_MS = 10_000;

export interface PodNetwork {
  netns: string;
  /** the pod's interface (the CNI veth) */
  device: string;
  tap: string;
  mac: string;
  /** what the agent is told: the guest interface and routes */
  guestInterface: Interface;
  guestRoutes: Route[];
}

interface IpAddrEntry {
  ifname: string;
  address?: string;
  mtu?: number;
  link_type?: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}

interface IpRouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  scope?: string;
  protocol?: string;
}

const SCOPES: Record<string, number> = { universe: 0, global: 0, site: 200, link: 253, host: 254 };

function runner(): RuntimeCommand {
  const reaper = Reaper.current();
  return reaper ? PosixSpawnCommand.for(reaper) : execaCommand;
}

async function inNetns(netns: string, args: string[], run: RuntimeCommand = runner()): Promise<string> {
  const r = await run.run({ file: 'nsenter', args: [`--net=${netns}`, '--', ...args], timeoutMs: CALL_MS });
  if (r.spawnErrno) throw failedPrecondition(`kata: cannot run nsenter (${r.spawnErrno}): util-linux is needed for pod networking`);
  if (r.timedOut) throw internal(`kata: \`${args.join(' ')}\` in ${netns} did not finish within ${CALL_MS} ms`);
  if (r.exitCode !== 0) throw internal(`kata: \`${args.join(' ')}\` in ${netns} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  return r.stdout;
}

/** the pod's interface (first non-loopback Ethernet link with an address) and its routes, as the agent wants them */
export function describePodInterface(addrs: IpAddrEntry[], routes: IpRouteEntry[]): Omit<PodNetwork, 'netns' | 'tap'> | undefined {
  const link = addrs.find((a) => a.ifname !== 'lo' && a.link_type === 'ether' && (a.addr_info ?? []).some((i) => i.family === 'inet' || i.family === 'inet6'));
  if (!link || !link.address) return undefined;
  const ips = (link.addr_info ?? [])
    .filter((i) => (i.family === 'inet' || (i.family === 'inet6' && i.scope !== 'link')) && i.local)
    .map((i) => ({ family: i.family === 'inet' ? IPFamily.v4 : IPFamily.v6, address: i.local, mask: String(i.prefixlen) }));
  const guestInterface: Interface = {
    device: link.ifname,
    name: link.ifname,
    IPAddresses: ips,
    mtu: BigInt(link.mtu ?? 1500),
    hwAddr: link.address,
    devicePath: '',
    type: '',
    rawFlags: 0,
  };
  const guestRoutes: Route[] = routes
    .filter((r) => !r.dev || r.dev === link.ifname)
    .map((r) => ({
      dest: r.dst === 'default' ? '' : r.dst,
      gateway: r.gateway ?? '',
      device: link.ifname,
      source: r.prefsrc ?? '',
      scope: SCOPES[r.scope ?? 'universe'] ?? 0,
      family: r.dst.includes(':') || (r.gateway ?? '').includes(':') ? IPFamily.v6 : IPFamily.v4,
      flags: 0,
      mtu: 0,
    }))
    // the link route (subnet) first, the gateway route after it: the kernel needs that order
    .sort((a, b) => Number(a.gateway !== '') - Number(b.gateway !== ''));
  return { device: link.ifname, mac: link.address, guestInterface, guestRoutes };
}

/**
 * Reads the pod's interface and makes the tap QEMU attaches to. Undefined when the namespace
 * has no interface to bridge (a pod with host networking never gets here: it has no netns path).
 */
export async function setUpPodNetwork(netns: string, run?: RuntimeCommand): Promise<PodNetwork | undefined> {
  const addrs = JSON.parse(await inNetns(netns, ['ip', '-j', 'addr', 'show'], run)) as IpAddrEntry[];
  const routes = JSON.parse(await inNetns(netns, ['ip', '-j', 'route', 'show'], run)) as IpRouteEntry[];
  const pod = describePodInterface(addrs, routes);
  if (!pod) return undefined;
  const tap = POD_TAP;
  const net: PodNetwork = { netns, tap, ...pod };
  try {
    await inNetns(netns, ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], run);
    await inNetns(netns, ['ip', 'link', 'set', tap, 'mtu', String(pod.guestInterface.mtu), 'up'], run);
    for (const [from, to] of [
      [pod.device, tap],
      [tap, pod.device],
    ] as const) {
      await inNetns(netns, ['tc', 'qdisc', 'add', 'dev', from, 'ingress'], run);
      await inNetns(
        netns,
        ['tc', 'filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u8', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to],
        run,
      );
    }
  } catch (err) {
    await tearDownPodNetwork(net, run).catch(() => undefined);
    throw err;
  }
  return net;
}

/** removes the tap and the redirections; the namespace itself is CNI's */
export async function tearDownPodNetwork(net: Pick<PodNetwork, 'netns' | 'device' | 'tap'>, run?: RuntimeCommand): Promise<void> {
  await inNetns(net.netns, ['tc', 'qdisc', 'del', 'dev', net.device, 'ingress'], run).catch(() => undefined);
  await inNetns(net.netns, ['ip', 'link', 'del', net.tap], run).catch(() => undefined);
}
