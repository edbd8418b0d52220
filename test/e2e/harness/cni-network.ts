/**
 * A private pod network for one CRI test instance: Debian's CNI plugins (bridge + host-local;
 * containerd adds loopback itself) on a /24 of 172.30.0.0/16 that nothing else on this machine
 * uses. The bridge is made here, before any pod, with the host's address on it, so the plugin
 * runs with isGateway=false and ipMasq=false: it then enables no IP forwarding and adds no
 * iptables rule, and the host still reaches every pod over the bridge (on-link).
 * destroy() deletes the bridge, CNI's cached results for this network and, should any exist,
 * iptables rules naming the subnet or network.
 */
import { execa } from 'execa';
import { mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where libcni (inside containerd) caches ADD results: not configurable through containerd. */
const CNI_CACHE_RESULTS = '/var/lib/cni/results';
const IP_TIMEOUT_MS = 10_000;

export interface CniNetwork {
  /** CNI network name (also the conflist name). */
  name: string;
  bridge: string;
  /** e.g. 172.30.17.0/24 */
  subnet: string;
  /** The host's address on the bridge, e.g. 172.30.17.1. */
  hostAddress: string;
  /** Directory holding the conflist: CRI's cni.conf_dir. */
  confDir: string;
  /** host-local's IP allocation state. */
  ipamDir: string;
  /** Addresses host-local currently has allocated (one file per IP in ipamDir/<name>). */
  allocatedIps(): string[];
  destroy(): Promise<string[]>;
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  const result = await execa(cmd, args, { reject: false, timeout: IP_TIMEOUT_MS });
  return { ok: result.exitCode === 0, out: `${result.stdout}${result.stderr}` };
}

async function usedThirdOctets(): Promise<Set<number>> {
  const used = new Set<number>();
  const text = `${(await run('ip', ['-o', '-4', 'addr', 'show'])).out}\n${(await run('ip', ['-o', '-4', 'route', 'show'])).out}`;
  for (const match of text.matchAll(/\b172\.30\.(\d+)\./g)) used.add(Number(match[1]));
  return used;
}

async function iptablesRulesMatching(needles: string[]): Promise<Array<{ table: string; rule: string }>> {
  const found: Array<{ table: string; rule: string }> = [];
  const save = await execa('iptables-save', [], { reject: false, timeout: IP_TIMEOUT_MS });
  if (save.exitCode !== 0) return found; // no iptables here: nothing can have been added
  let table = '';
  for (const line of save.stdout.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ') && needles.some((n) => line.includes(n))) found.push({ table, rule: line.slice(3) });
  }
  return found;
}

/** Makes the bridge and writes the conflist under `dir` (the instance's dir). */
export async function createCniNetwork(dir: string): Promise<CniNetwork> {
  const used = await usedThirdOctets();
  const start = Math.floor(Math.random() * 250) + 1;
  let octet = -1;
  let bridge = '';
  for (let i = 0; i < 250 && octet < 0; i++) {
    const candidate = ((start + i) % 250) + 1;
    if (used.has(candidate)) continue;
    const name = `tsebr${candidate}`;
    // `ip link add` fails if another instance took this name meanwhile: try the next one.
    if ((await run('ip', ['link', 'add', name, 'type', 'bridge'])).ok) {
      octet = candidate;
      bridge = name;
    }
  }
  if (octet < 0) throw new Error('no free 172.30.x.0/24 subnet / bridge name for a CNI test network');

  const subnet = `172.30.${octet}.0/24`;
  const hostAddress = `172.30.${octet}.1`;
  const name = `tse-net-${octet}`;
  const confDir = join(dir, 'cni');
  const ipamDir = join(dir, 'cni-ipam');
  const setup = [
    ['addr', 'add', `${hostAddress}/24`, 'dev', bridge],
    ['link', 'set', bridge, 'up'],
  ];
  for (const args of setup) {
    const result = await run('ip', args);
    if (!result.ok) {
      await run('ip', ['link', 'del', bridge]);
      throw new Error(`ip ${args.join(' ')}: ${result.out}`);
    }
  }
  mkdirSync(confDir, { recursive: true });
  mkdirSync(ipamDir, { recursive: true });
  const conflist = {
    cniVersion: '0.4.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: false,
        isDefaultGateway: false,
        ipMasq: false,
        hairpinMode: false,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet, rangeStart: `172.30.${octet}.10`, rangeEnd: `172.30.${octet}.250`, gateway: hostAddress }]],
        },
      },
    ],
  };
  writeFileSync(join(confDir, '10-tsshim-e2e.conflist'), `${JSON.stringify(conflist, null, 2)}\n`);

  return {
    name,
    bridge,
    subnet,
    hostAddress,
    confDir,
    ipamDir,
    allocatedIps(): string[] {
      try {
        return readdirSync(join(ipamDir, name)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
      } catch {
        return [];
      }
    },
    async destroy(): Promise<string[]> {
      const problems: string[] = [];
      const del = await run('ip', ['link', 'del', bridge]);
      if (!del.ok && !/Cannot find device/.test(del.out)) problems.push(`ip link del ${bridge}: ${del.out}`);
      try {
        for (const file of readdirSync(CNI_CACHE_RESULTS)) {
          if (file.startsWith(`${name}-`)) rmSync(join(CNI_CACHE_RESULTS, file), { force: true });
        }
        // Only if nothing else uses them (another instance, a real kubelet).
        rmdirSync(CNI_CACHE_RESULTS);
        rmdirSync('/var/lib/cni');
      } catch {
        // absent or still in use
      }
      for (const { table, rule } of await iptablesRulesMatching([subnet, `"${name}"`, `name: ${name}`])) {
        // iptables-save quotes arguments with spaces (comments): split like a shell would.
        const args = (rule.match(/"[^"]*"|\S+/g) ?? []).map((a) => a.replace(/^"(.*)"$/, '$1'));
        const removed = await execa('iptables', ['-t', table, '-D', ...args], { reject: false, timeout: IP_TIMEOUT_MS });
        if (removed.exitCode !== 0) problems.push(`iptables -t ${table} -D ${rule}: ${removed.stderr}`);
      }
      return problems;
    },
  };
}

/** iptables rules that mention `subnet` (tests assert none were added). */
export async function iptablesRulesFor(subnet: string): Promise<string[]> {
  return (await iptablesRulesMatching([subnet])).map((r) => `${r.table}: ${r.rule}`);
}
