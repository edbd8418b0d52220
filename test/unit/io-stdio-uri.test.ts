import { describe, expect, it } from 'vitest';
import { ShimError } from '../../src/core/errors.js';
import { planStdio, type StdioPlan } from '../../src/io/stdio-uri.js';

const uris = (stdout: string, stdin = '', stderr = '') => ({ stdin, stdout, stderr, terminal: false });

describe('planStdio', () => {
  const cases: Array<[string, ReturnType<typeof uris>, StdioPlan]> = [
    ['all empty is null IO', uris(''), { kind: 'null' }],
    [
      'plain paths are FIFOs',
      uris('/run/x/id-stdout', '/run/x/id-stdin', '/run/x/id-stderr'),
      { kind: 'fifo', stdin: '/run/x/id-stdin', stdout: '/run/x/id-stdout', stderr: '/run/x/id-stderr' },
    ],
    [
      'fifo:// is a plain path, on every stream',
      uris('fifo:///run/x/out', 'fifo:///run/x/in', '/run/x/err'),
      { kind: 'fifo', stdin: '/run/x/in', stdout: '/run/x/out', stderr: '/run/x/err' },
    ],
    [
      'stdin only still plans FIFOs',
      uris('', '/run/x/in'),
      { kind: 'fifo', stdin: '/run/x/in', stdout: '', stderr: '' },
    ],
    ['a colon after a slash is no scheme', uris('/run/a:b/out'), { kind: 'fifo', stdin: '', stdout: '/run/a:b/out', stderr: '' }],
    ['file:// decodes the path', uris('file:///var/log/my%20ctr/out.log', '/in'), { kind: 'file', path: '/var/log/my ctr/out.log' }],
    [
      'binary:// gives argv pairs, first value per key, in order',
      uris('binary:///usr/bin/my-logger?b=2&a=1&b=3&flag'),
      { kind: 'binary', protocol: 1, path: '/usr/bin/my-logger', args: ['b', '2', 'a', '1', 'flag', ''] },
    ],
    [
      'binary-v2:// is protocol 2',
      uris('binary-v2:///opt/log%20ger?id=x%2Fy'),
      { kind: 'binary', protocol: 2, path: '/opt/log ger', args: ['id', 'x/y'] },
    ],
  ];
  it.each(cases)('%s', (_name, input, plan) => {
    expect(planStdio(input)).toEqual(plan);
  });

  const failures: Array<[string, string, string, RegExp]> = [
    ['ttrpc streaming', 'ttrpc+unix:///run/s.sock?streaming_id=c-stdout', 'Unimplemented', /streaming stdio.*io_type/],
    ['grpc streaming over vsock', 'grpc+vsock://3:1024?streaming_id=c-stdout', 'Unimplemented', /streaming/],
    ['unknown scheme', 'http://example/x', 'InvalidArgument', /unknown stdio scheme http/],
    ['relative file path', 'file://relative', 'InvalidArgument', /file:\/\/\/absolute/],
    ['file uri of a directory', 'file:///var/log/', 'InvalidArgument', /absolute/],
    ['binary without path', 'binary://', 'InvalidArgument', /no logger path/],
  ];
  it.each(failures)('rejects %s', (_name, stdout, code, message) => {
    let err: unknown;
    try {
      planStdio(uris(stdout));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe(code);
    expect((err as ShimError).message).toMatch(message);
  });
});
