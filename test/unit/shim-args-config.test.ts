import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { parseArgs } from '../../src/shim/args.js';
import { groupKey, socketPath } from '../../src/shim/address.js';
import { loadConfig, parseConfig } from '../../src/shim/config.js';
import { aliasFromBinary } from '../../src/shim/backend-registry.js';
import { errorToStatus } from '../../src/shim/status.js';
import { ShimError } from '../../src/core/errors.js';

describe('parseArgs (Go flag syntax)', () => {
  it('parses the start argv of containerd 1.6', () => {
    const a = parseArgs(['-namespace', 'default', '-address', '/run/c.sock', '-publish-binary', '/usr/bin/containerd', '-id', 't1', '-debug', 'start']);
    expect(a).toMatchObject({ namespace: 'default', address: '/run/c.sock', publishBinary: '/usr/bin/containerd', id: 't1', debug: true, action: 'start' });
  });
  it('accepts --flag=value, unknown flags and stops at the action', () => {
    const a = parseArgs(['--namespace=k8s.io', '-future-flag', 'x', '-bundle', '/b', 'delete', '-id', 'ignored']);
    expect(a.namespace).toBe('k8s.io');
    expect(a.bundle).toBe('/b');
    expect(a.unknown['future-flag']).toBe('x');
    expect(a.action).toBe('delete');
    expect(a.id).toBe('');
  });
  it('-v and -info are booleans', () => {
    expect(parseArgs(['-v']).version).toBe(true);
    expect(parseArgs(['-info']).info).toBe(true);
  });
});

describe('socket address and grouping', () => {
  it('hashes <address>/<ns>/<key> like the reference shim', () => {
    const expected = createHash('sha256').update('/x/containerd.sock/default/t1').digest('hex');
    expect(socketPath('/run/containerd/s', '/x/containerd.sock', 'default', 't1')).toBe(`/run/containerd/s/${expected}`);
    expect(socketPath('/run/containerd/s', 'unix:///x/containerd.sock', 'default', 't1')).toBe(`/run/containerd/s/${expected}`);
  });
  it('groups by annotation, then CRI sandbox, then scope', () => {
    expect(groupKey({ 'io.containerd.tsshim.v2.group': 'g' }, 'id', 'pod')).toBe('g');
    expect(groupKey({ 'io.containerd.runc.v2.group': 'r' }, 'id', 'pod')).toBe('r');
    expect(groupKey({ 'io.kubernetes.cri.sandbox-id': 'sb' }, 'id', 'pod')).toBe('sb');
    expect(groupKey({ 'io.kubernetes.cri.sandbox-id': 'sb' }, 'id', 'container')).toBe('id');
    expect(groupKey({}, 'id', 'namespace')).not.toBe('id');
    expect(groupKey(undefined, 'id', 'pod')).toBe('id');
  });
});

describe('config', () => {
  it('defaults when the default file is absent', () => {
    const c = loadConfig({ env: { TSSHIM_CONFIG: '' }, path: undefined });
    expect(c.backend).toBeDefined();
  });
  it('parses backend tables', () => {
    const c = parseConfig('backend = "crun"\n[shim]\ngroup = "namespace"\n[crun]\nbinary = "/usr/bin/crun"\nroot = "/run/x"\n', 't');
    expect(c.backend).toBe('crun');
    expect(c.shim.group).toBe('namespace');
    expect(c.crun).toMatchObject({ binary: '/usr/bin/crun', root: '/run/x' });
  });
  it('a bad file is InvalidArgument with position; bad values name the key', () => {
    expect(() => parseConfig('backend = ', 'f.toml')).toThrow(/f.toml/);
    try {
      parseConfig('backend = "docker"', 'f.toml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ShimError);
      expect((err as ShimError).code).toBe('InvalidArgument');
      expect((err as Error).message).toMatch(/backend must be one of/);
    }
    expect(() => parseConfig('[runc]\nroot = "relative"', 'f')).toThrow(/runc.root must be an absolute path/);
  });
  describe('a broken file names its line, its column and the problem in words', () => {
    const BROKEN: Array<[string, string, RegExp]> = [
      [
        'unterminated string',
        'backend = "native"\n[shim]\ngroup = "pod\nlog_level = "info"\n',
        /: line 3, column 9: unterminated string: "pod must end with " on the same line$/,
      ],
      ['unterminated string at the end of the file', 'backend = "native', /: line 1, column 11: unterminated string: "native must end with " before the end of the file$/],
      ['missing "]" of a table header', 'backend = "runc"\n[runc\nbinary = "/usr/bin/runc"\n', /: line 2, column 1: table header \[runc is missing its closing "\]"$/],
      ['duplicate key', '[shim]\ngroup = "pod"\nlog_level = "info"\ngroup = "namespace"\n', /: line 4, column 1: key "shim.group" is defined twice \(first defined on line 2\)$/],
      ['duplicate table', '[runc]\nroot = "/r"\n\n[runc]\nbinary = "b"\n', /: line 4, column 1: table \[runc\] is defined twice \(first defined on line 1\)$/],
      ['unquoted string', '[shim]\ngroup = pod\n', /: line 2, column 9: invalid value pod for key "group": a string must be quoted \("pod"\)$/],
      ['missing value', 'backend =\n', /: line 1, column 10: missing value for key "backend"/],
      ['text after a value', 'backend = "runc" crun\n', /: line 1, column 18: unexpected crun after the value/],
    ];
    it.each(BROKEN)('%s', (_what, text, message) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
      const file = path.join(dir, 'config.toml');
      fs.writeFileSync(file, text);
      try {
        expect(() => loadConfig({ path: file })).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringMatching(message) }));
        // the file is named, and the parser's own jargon is not what the person reads
        expect(() => loadConfig({ path: file })).toThrow(`tsshim config ${file}: line `);
        expect(() => loadConfig({ path: file })).not.toThrow(/control characters|Invalid TOML document|\n/);
      } finally {
        fs.rmSync(dir, { recursive: true });
      }
    });
    it('a value of the wrong type names its key, its line and what it got', () => {
      const BAD_TYPE: Array<[string, RegExp]> = [
        ['[runc]\nroot = "/r"\nsystemd_cgroup = "yes"\n', /^tsshim config f\.toml: line 3: runc\.systemd_cgroup must be true or false \(got "yes"\)$/],
        ['# tsshim\nbackend = 3\n', /^tsshim config f\.toml: line 2: backend must be a string \(got 3\)$/],
        ['shim = "pod"\n', /^tsshim config f\.toml: line 1: shim must be a table \(\[shim\]\) \(got "pod"\)$/],
        ['[shim]\n  log_level = ["debug"]\n', /^tsshim config f\.toml: line 2: shim\.log_level must be a string \(got an array\)$/],
      ];
      for (const [text, message] of BAD_TYPE) {
        expect(() => parseConfig(text, 'f.toml'), text).toThrow(expect.objectContaining({ code: 'InvalidArgument', message: expect.stringMatching(message) }));
      }
    });
  });
  it('[shim] spare_idle and spare: seconds, 0 or false for none; bad values name the key', () => {
    expect(parseConfig('', 'x').shim.spareIdleSec).toBe(300);
    expect(parseConfig('[shim]\nspare_idle = 45\n', 'x').shim.spareIdleSec).toBe(45);
    expect(parseConfig('[shim]\nspare_idle = 0\n', 'x').shim.spareIdleSec).toBe(0);
    expect(parseConfig('[shim]\nspare = false\nspare_idle = 45\n', 'x').shim.spareIdleSec).toBe(0);
    expect(parseConfig('[shim]\nspare = true\n', 'x').shim.spareIdleSec).toBe(300);
    for (const bad of ['-1', '1.5', '"60"', '86401']) {
      expect(() => parseConfig(`[shim]\nspare_idle = ${bad}\n`, 'x')).toThrow(/line 2: shim\.spare_idle must be a whole number of seconds from 0 to 86400/);
    }
    expect(() => parseConfig('[shim]\nspare = "no"\n', 'x')).toThrow(/shim\.spare must be true or false/);
  });

  it('an explicitly named missing file is an error', () => {
    const missing = path.join(os.tmpdir(), `nope-${process.pid}.toml`);
    expect(() => loadConfig({ path: missing })).toThrow(/tsshim config/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const f = path.join(dir, 'c.toml');
    fs.writeFileSync(f, 'backend = "runc"\n');
    expect(loadConfig({ env: { TSSHIM_CONFIG: f } }).source).toBe(f);
    fs.rmSync(dir, { recursive: true });
  });
});

describe('binary alias and error mapping', () => {
  it('maps containerd-shim-tsshim-<backend>-v2 to a backend', () => {
    expect(aliasFromBinary('/x/containerd-shim-tsshim-crun-v2')).toBe('crun');
    expect(aliasFromBinary('/x/containerd-shim-tsshim-v2')).toBeUndefined();
    expect(aliasFromBinary('/x/containerd-shim-tsshim-bogus-v2')).toBeUndefined();
  });
  it('renders containerd-style messages and codes', () => {
    expect(errorToStatus(new ShimError('NotFound', 'container x: container not created'))).toEqual({ code: 5, message: 'container x: container not created: not found' });
    expect(errorToStatus(new ShimError('Unimplemented', 'nope'))).toEqual({ code: 12, message: 'nope: not implemented' });
    expect(errorToStatus(new Error('boom'))).toEqual({ code: 2, message: 'boom' });
  });
});

describe('runtime options decoding', () => {
  it('reads runc Options, legacy CreateOptions and runtimeoptions; tolerates unknown types', async () => {
    const { decodeRuntimeOptions } = await import('../../src/shim/runtime-options.js');
    const { Options: RuncOptions } = await import('../../src/proto/gen/containerd/runc/v1/options.js');
    const { CreateOptions } = await import('../../src/proto/gen/containerd/linux/runc/runc.js');
    const { Options: RuntimeOptions } = await import('../../src/proto/gen/runtimeoptions/v1/options.js');
    const { TypeUrl, packMessage } = await import('../../src/proto/typeurls.js');
    const runc = decodeRuntimeOptions(packMessage(TypeUrl.RuncOptions, RuncOptions, RuncOptions.fromPartial({ binaryName: 'crun', root: '/r', ioUid: 7, systemdCgroup: true })));
    expect(runc.runc).toMatchObject({ binaryName: 'crun', root: '/r', ioUid: 7, systemdCgroup: true });
    const legacy = decodeRuntimeOptions(packMessage(`type.googleapis.com/${TypeUrl.LinuxRuncCreateOptions}`, CreateOptions, CreateOptions.fromPartial({ noPivotRoot: true, ioGid: 9 })));
    expect(legacy.runc).toMatchObject({ noPivotRoot: true, ioGid: 9 });
    const cri = decodeRuntimeOptions(packMessage(TypeUrl.RuntimeOptions, RuntimeOptions, RuntimeOptions.fromPartial({ configPath: '/etc/x.toml' })));
    expect(cri.configPath).toBe('/etc/x.toml');
    expect(decodeRuntimeOptions({ typeUrl: 'example.com/Unknown', value: Buffer.from([1, 2]) }).ignoredType).toBe('example.com/Unknown');
    expect(() => decodeRuntimeOptions({ typeUrl: TypeUrl.RuncOptions, value: Buffer.from([0x0a, 0xff]) })).toThrow(/cannot decode runtime options/);
    expect(decodeRuntimeOptions(undefined).runc).toEqual({});
  });
});

describe('start stdin: legacy options vs the 2.3 bootstrap protocol', () => {
  it('answers BootstrapParams only when they name our id and namespace', async () => {
    const { readStartInput } = await import('../../src/shim/start-input.js');
    const { BootstrapParams, BootstrapResult, LogLevel } = await import('../../src/proto/gen/containerd/runtime/bootstrap/v1/bootstrap.js');
    const { Options: RuntimeOptions } = await import('../../src/proto/gen/runtimeoptions/v1/options.js');
    const { Any } = await import('../../src/proto/gen/google/protobuf/any.js');
    const { TypeUrl, packMessage } = await import('../../src/proto/typeurls.js');
    const args = parseArgs(['-namespace', 'k8s.io', '-id', 'sb1', 'start']);
    const opts = packMessage(TypeUrl.RuntimeOptions, RuntimeOptions, RuntimeOptions.fromPartial({ configPath: '/etc/tsshim/pod.toml' }));
    const params = BootstrapParams.encode(
      BootstrapParams.fromPartial({
        instanceId: 'sb1',
        namespace: 'k8s.io',
        logLevel: LogLevel.LOG_LEVEL_DEBUG,
        containerdTtrpcAddress: '/run/containerd/containerd.sock.ttrpc',
        extensions: [{ value: opts }],
        socketDir: '/run/containerd/s',
      }),
    ).finish();
    const boot = readStartInput(args, params);
    expect(boot).toMatchObject({ configPath: '/etc/tsshim/pod.toml', socketDir: '/run/containerd/s', debug: true });
    const result = BootstrapResult.decode(boot.bootstrap!.encodeResult('unix:///run/containerd/s/abc'));
    expect(result).toMatchObject({ version: 2, address: 'unix:///run/containerd/s/abc', protocol: 'ttrpc' });
    // someone else's params: treated as legacy stdin, answered with a plain address
    const other = readStartInput(parseArgs(['-namespace', 'k8s.io', '-id', 'other', 'start']), params);
    expect(other.bootstrap).toBeUndefined();
    // the legacy Any (1.6–2.2)
    const legacy = readStartInput(args, Any.encode(opts).finish());
    expect(legacy).toMatchObject({ configPath: '/etc/tsshim/pod.toml' });
    expect(legacy.bootstrap).toBeUndefined();
    expect(readStartInput(args, new Uint8Array(0))).toEqual({ debug: false });
  });
});
