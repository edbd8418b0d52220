import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SandboxMembership, placementOf } from '../../src/core/sandbox.js';
import { composeRunscFlags, networkForSpec } from '../../src/backends/gvisor/backend.js';
import { parseWaitOutput, runscErrorFromLog } from '../../src/backends/gvisor/runsc-cli.js';
import { parseRunscRelease } from '../../src/backends/gvisor/runsc-facts.js';
import { metricsFromRunscStats } from '../../src/backends/gvisor/stats.js';
import { classifyRuntimeError } from '../../src/backends/runc/runtime-error.js';
import { defaultConfig, parseConfig } from '../../src/shim/config.js';
import { aliasFromBinary } from '../../src/shim/backend-registry.js';

describe('sandbox placement', () => {
  it.each([
    [{}, { sandboxId: 'c1', creates: true }],
    [{ 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-id': 'c1' }, { sandboxId: 'c1', creates: true }],
    [{ 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': 'pod' }, { sandboxId: 'pod', creates: false }],
    [{ 'io.kubernetes.cri-o.ContainerType': 'container', 'io.kubernetes.cri-o.SandboxID': 'pod' }, { sandboxId: 'pod', creates: false }],
    // a container without its sandbox's id is alone
    [{ 'io.kubernetes.cri.container-type': 'container' }, { sandboxId: 'c1', creates: true }],
  ])('%j → %j', (annotations, want) => {
    expect(placementOf('c1', annotations)).toEqual(want);
  });

  it('knows the last container of a sandbox', () => {
    const m = new SandboxMembership();
    m.join('pod', { sandboxId: 'pod', creates: true });
    m.join('app', { sandboxId: 'pod', creates: false });
    expect(m.leave('app')).toEqual({ sandboxId: 'pod', last: false });
    expect(m.leave('pod')).toEqual({ sandboxId: 'pod', last: true });
    expect(m.leave('pod')).toBeUndefined();
  });
});

describe('gvisor config and flags', () => {
  it('parses [gvisor] and a runsc-style [runsc_config]', () => {
    const c = parseConfig(
      [
        'backend = "gvisor"',
        '[gvisor]',
        'binary = "/opt/runsc"',
        'root = "/run/x"',
        'platform = "ptrace"',
        'network = "host"',
        'overlay = "root:memory"',
        'debug_log = "/tmp/runsc/"',
        'flags = ["--file-access=shared"]',
        '[runsc_config]',
        'platform = "systrap"',
        'net-raw = true',
      ].join('\n'),
      't',
    );
    expect(c.backend).toBe('gvisor');
    expect(c.gvisor).toMatchObject({ binary: '/opt/runsc', root: '/run/x', platform: 'ptrace', network: 'host', overlay: 'root:memory' });
    expect(c.gvisor.runscConfig).toEqual({ platform: 'systrap', 'net-raw': 'true' });
    expect(composeRunscFlags(c.gvisor, 'ptrace', 'host')).toEqual([
      '--platform=systrap',
      '--network=host',
      '--overlay2=root:memory',
      '--debug=true',
      '--debug-log=/tmp/runsc/',
      '--net-raw=true',
      '--file-access=shared',
    ]);
    const d = defaultConfig().gvisor;
    expect(d).toMatchObject({ binary: 'runsc', root: '/run/containerd/runsc' });
    // unset: probed (platform) and decided per container (network)
    expect([d.platform, d.network]).toEqual([undefined, undefined]);
  });

  it.each([
    ['[gvisor]\nplatform = "xen"', /gvisor.platform must be one of "systrap", "ptrace", "kvm"/],
    ['[gvisor]\nnetwork = "bridge"', /gvisor.network must be one of/],
    ['[gvisor]\nflags = "x"', /gvisor.flags must be an array/],
    ['[runsc_config]\n"bad key" = "x"', /runsc_config.bad key must be named like a runsc flag/],
  ])('rejects %j', (text, msg) => {
    expect(() => parseConfig(text, 't')).toThrow(msg);
  });

  it('picks the network from the spec: host in a pod netns, none in a new one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gv-'));
    try {
      const write = (ns: unknown[]) => writeFileSync(join(dir, 'config.json'), JSON.stringify({ linux: { namespaces: ns } }));
      write([{ type: 'network', path: '/var/run/netns/cni-1' }]);
      expect(networkForSpec(dir)).toBe('host');
      write([{ type: 'network' }]);
      expect(networkForSpec(dir)).toBe('none');
      write([{ type: 'pid' }]);
      expect(networkForSpec(dir)).toBe('host');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has an alias binary', () => {
    expect(aliasFromBinary('/x/containerd-shim-tsshim-gvisor-v2')).toBe('gvisor');
  });
});

describe('runsc output', () => {
  it('reads runsc wait', () => {
    expect(parseWaitOutput('{"id":"sub1","exitStatus":137}\n')).toBe(137);
    expect(parseWaitOutput('')).toBeUndefined();
    expect(parseWaitOutput('{"id":"x"}')).toBeUndefined();
  });

  it('maps runsc events --stats to cgroup v1 metrics', () => {
    const m = metricsFromRunscStats({
      cpu: { usage: { total: 102604707 } },
      memory: { usage: { limit: 0, usage: 5083136, failcnt: 0 } },
      pids: { current: 4 },
    });
    expect(m.memory?.usage).toEqual({ limit: 0n, usage: 5083136n, max: 0n, failcnt: 0n });
    expect(m.cpu?.usage?.total).toBe(102604707n);
    expect(m.pids).toEqual({ current: 4n, limit: 0n });
  });

  it('reads the release date from runsc --version', () => {
    expect(parseRunscRelease('runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n')).toBe(20221219);
    expect(parseRunscRelease('runsc version release-20240729.0\n')).toBe(20240729);
    expect(parseRunscRelease('runsc version unknown\n')).toBeUndefined();
  });

  // what runsc 2022 wrote to log.json when the sandbox could not mount a bind source (measured)
  const BOOT_FAILURE_LOG =
    '{"msg":"error setting up FS: mounting {Destination:/x Type:bind Source:/nonexistent-src Options:[rbind ro] UIDMappings:[] GIDMappings:[]}: stat(\\"/nonexistent-src\\") failed: stat /nonexistent-src: no such file or directory","level":"error","time":"2026-12-07T19:39:43.294400534Z"}' +
    '{"msg":"Error reading mounts file: error unmarshaling mounts: unexpected end of JSON input\\nJSON bytes:\\n","level":"error","time":"2026-12-07T19:39:43.339036404Z"}' +
    '{"msg":"creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF","level":"error","time":"2026-12-07T19:39:43.357310344Z"}';

  it("names the sandbox's own errors when it fails to boot, runsc's last one first", () => {
    const msg = runscErrorFromLog('create', BOOT_FAILURE_LOG);
    expect(msg).toBe(
      'creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF (the sandbox logged: ' +
        'error setting up FS: mounting {Destination:/x Type:bind Source:/nonexistent-src Options:[rbind ro] UIDMappings:[] GIDMappings:[]}: stat("/nonexistent-src") failed: stat /nonexistent-src: no such file or directory' +
        ' | Error reading mounts file: error unmarshaling mounts: unexpected end of JSON input JSON bytes:)',
    );
    expect(classifyRuntimeError('create', '', msg, 128, { binary: 'runsc' }).code).toBe('Unknown');
    // other verbs: the last error alone, as the reference shim reads it
    expect(runscErrorFromLog('delete', BOOT_FAILURE_LOG)).toBe('creating container: cannot create sandbox: cannot read client sync file: waiting for sandbox to start: EOF');
    expect(runscErrorFromLog('create', '{"msg":"unknown platform: systrap","level":"error"}')).toBe('unknown platform: systrap');
  });

  it.each([
    ['delete', 'loading container "c1": file does not exist', 'NotFound'],
    ['kill', 'cannot signal container "c1" in state created', 'FailedPrecondition'],
  ] as const)('classifies runsc %s: %s', (verb, msg, code) => {
    expect(classifyRuntimeError(verb, '', msg, 128, { binary: 'runsc' }).code).toBe(code);
  });
});
