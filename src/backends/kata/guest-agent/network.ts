/**
 * The guest's network as Kata's runtime configures it: the pod's interface (found by its
 * MAC address, which the host gave the tap's guest side), its addresses and MTU, routes and
 * static ARP neighbours. Done by running the `ip` command (iproute2, or busybox's applet)
 * rather than speaking rtnetlink from Node: a handful of calls per pod start, and the
 * guest image carries `ip` (dist/kata/guest-files.txt asks for it).
 *
 * Read-only views (ListInterfaces/ListRoutes, per-interface stats) come from /sys and /proc.
 * In host-test mode the agent must not touch the host's network: the network verbs then
 * need `netAllowed` (a test runs the agent in its own network namespace).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { failedPrecondition, internal, invalidArgument, notFound, unimplemented } from '../../../core/errors.js';
import { childProcess } from '../../../sys/lazy-builtins.js';
import { IPFamily, type ARPNeighbor, type Interface, type Route } from '../../../proto/gen/kata/types.js';
import type { NetworkStats } from '../../../proto/gen/kata/agent.js';

const IP_SEARCH = ['/sbin/ip', '/usr/sbin/ip', '/bin/ip', '/usr/bin/ip'];
const IP_TIMEOUT_MS = 10_000;
const SYS_NET = '/sys/class/net';

/** rtnetlink NUD_* states (ARPNeighbor.state) as `ip neigh` names them */
const NUD: Record<number, string> = { 0x01: 'incomplete', 0x02: 'reachable', 0x04: 'stale', 0x08: 'delay', 0x10: 'probe', 0x20: 'failed', 0x40: 'noarp', 0x80: 'permanent' };
/** rtnetlink route scopes (Route.scope) */
const SCOPE: Record<number, string> = { 0: 'global', 200: 'site', 253: 'link', 254: 'host' };

export interface GuestNetworkOptions {
  /** may the agent change this machine's network (a VM guest, or a test's own netns) */
  allowed: boolean;
  /** the ip command; default: found in the usual places */
  ipCommand?: string;
}

export class GuestNetwork {
  constructor(private readonly o: GuestNetworkOptions) {}

  async updateInterface(iface: Interface): Promise<Interface> {
    this.checkAllowed('UpdateInterface');
    const link = findLink(iface);
    const name = iface.name || link;
    await this.ip(['link', 'set', 'dev', link, 'down']);
    if (name !== link) await this.ip(['link', 'set', 'dev', link, 'name', name]);
    if (iface.mtu > 0n) await this.ip(['link', 'set', 'dev', name, 'mtu', String(iface.mtu)]);
    await this.ip(['addr', 'flush', 'dev', name]);
    for (const a of iface.IPAddresses) {
      if (!a.address) throw invalidArgument(`UpdateInterface ${name}: an address is empty`);
      const v6 = a.family === IPFamily.v6 || a.address.includes(':');
      await this.ip([...(v6 ? ['-6'] : []), 'addr', 'add', `${a.address}/${a.mask || (v6 ? '128' : '32')}`, 'dev', name]);
    }
    await this.ip(['link', 'set', 'dev', name, 'up']);
    return { ...iface, name, hwAddr: iface.hwAddr || readSys(name, 'address') };
  }

  /** adds (replaces) the routes: link-scope ones first, so that gateways are reachable */
  async updateRoutes(routes: Route[]): Promise<Route[]> {
    this.checkAllowed('UpdateRoutes');
    const ordered = [...routes].sort((a, b) => Number(!!a.gateway) - Number(!!b.gateway));
    for (const r of ordered) {
      const v6 = r.family === IPFamily.v6 || r.dest.includes(':') || r.gateway.includes(':');
      const args = [...(v6 ? ['-6'] : []), 'route', 'replace', r.dest || 'default'];
      if (r.gateway) args.push('via', r.gateway);
      if (r.device) args.push('dev', r.device);
      if (r.source) args.push('src', r.source);
      if (r.scope && SCOPE[r.scope]) args.push('scope', SCOPE[r.scope]!);
      if (r.mtu) args.push('mtu', String(r.mtu));
      await this.ip(args);
    }
    return routes;
  }

  async addArpNeighbors(neighbors: ARPNeighbor[]): Promise<void> {
    this.checkAllowed('AddARPNeighbors');
    for (const n of neighbors) {
      const to = n.toIPAddress?.address;
      if (!to) throw invalidArgument('AddARPNeighbors: a neighbour has no IP address');
      if (!n.device) throw invalidArgument(`AddARPNeighbors ${to}: no device`);
      const args = ['neigh', 'replace', to];
      if (n.lladdr) args.push('lladdr', n.lladdr);
      args.push('dev', n.device, 'nud', NUD[n.state] ?? 'permanent');
      await this.ip(args);
    }
  }

  async listInterfaces(): Promise<Interface[]> {
    const addrs = networkInterfaces();
    return links().map((name) => ({
      device: name,
      name,
      IPAddresses: (addrs[name] ?? []).map((a) => ({
        family: a.family === 'IPv6' ? IPFamily.v6 : IPFamily.v4,
        address: a.address,
        mask: a.cidr ? a.cidr.split('/')[1]! : '',
      })),
      mtu: BigInt(readSys(name, 'mtu') || '0'),
      hwAddr: readSys(name, 'address'),
      devicePath: '',
      type: '',
      rawFlags: Number.parseInt(readSys(name, 'flags') || '0', 16) || 0,
    }));
  }

  /** IPv4 routes from /proc/net/route */
  async listRoutes(): Promise<Route[]> {
    let text: string;
    try {
      text = readFileSync('/proc/net/route', 'utf8');
    } catch {
      return [];
    }
    const out: Route[] = [];
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 8) continue;
      const [device, dest, gw, , , , , mask] = f as [string, string, string, string, string, string, string, string];
      const prefix = popcount(hexIp(mask));
      const d = ipv4(hexIp(dest));
      out.push({
        dest: prefix === 0 && d === '0.0.0.0' ? '' : `${d}/${prefix}`,
        gateway: gw === '00000000' ? '' : ipv4(hexIp(gw)),
        device,
        source: '',
        scope: gw === '00000000' ? 253 : 0,
        family: IPFamily.v4,
        flags: 0,
        mtu: 0,
      });
    }
    return out;
  }

  /** counters of the guest's interfaces (not lo); none on the host (they are the host's) */
  stats(): NetworkStats[] {
    if (!this.o.allowed) return [];
    return links()
      .filter((n) => n !== 'lo')
      .map((name) => {
        const c = (k: string) => BigInt(readSys(name, `statistics/${k}`) || '0');
        return {
          name,
          rxBytes: c('rx_bytes'),
          rxPackets: c('rx_packets'),
          rxErrors: c('rx_errors'),
          rxDropped: c('rx_dropped'),
          txBytes: c('tx_bytes'),
          txPackets: c('tx_packets'),
          txErrors: c('tx_errors'),
          txDropped: c('tx_dropped'),
        };
      });
  }

  private checkAllowed(what: string): void {
    if (!this.o.allowed) throw failedPrecondition(`${what}: this agent runs on a host (host-test mode) and does not change its network`);
  }

  private ipPath(): string {
    const found = this.o.ipCommand ?? IP_SEARCH.find((p) => existsSync(p));
    if (!found) throw unimplemented('configuring the guest network needs the `ip` command (iproute2 or busybox), which this guest does not have');
    return found;
  }

  private async ip(args: string[]): Promise<void> {
    const cmd = this.ipPath();
    try {
      await promisify(childProcess().execFile)(cmd, args, { timeout: IP_TIMEOUT_MS, killSignal: 'SIGKILL', env: {} });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw internal(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, err);
    }
  }
}

function links(): string[] {
  try {
    return readdirSync(SYS_NET).sort();
  } catch {
    return [];
  }
}

function readSys(link: string, file: string): string {
  try {
    return readFileSync(join(SYS_NET, link, file), 'utf8').trim();
  } catch {
    return '';
  }
}

/** the link an Interface names: by MAC first (the name the host saw may differ), else by name */
function findLink(iface: Interface): string {
  const mac = iface.hwAddr.toLowerCase();
  if (mac) {
    const byMac = links().find((l) => readSys(l, 'address').toLowerCase() === mac);
    if (byMac) return byMac;
  }
  for (const n of [iface.device, iface.name]) if (n && links().includes(n)) return n;
  throw notFound(`network interface with MAC ${iface.hwAddr || '(none)'} or name ${iface.name || iface.device || '(none)'} in the guest`);
}

function hexIp(hex: string): number {
  // /proc/net/route: little-endian hex
  return Number.parseInt(hex, 16) >>> 0;
}

function ipv4(le: number): string {
  return [le & 0xff, (le >>> 8) & 0xff, (le >>> 16) & 0xff, (le >>> 24) & 0xff].join('.');
}

function popcount(n: number): number {
  let c = 0;
  for (let v = n >>> 0; v; v >>>= 1) c += v & 1;
  return c;
}
