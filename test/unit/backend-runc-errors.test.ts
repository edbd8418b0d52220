/**
 * classifyRuntimeError against the strings runc 1.1.5 and crun 1.8.1 print on this
 * project's machines (collected by driving both CLIs by hand; see the component test for
 * the same cases end to end).
 */
import { describe, expect, it } from 'vitest';
import { classifyRuntimeError, lastLogError, logErrors, type RuntimeVerb } from '../../src/backends/runc/runtime-error.js';
import type { ErrorCode } from '../../src/core/errors.js';

interface Row {
  runtime: 'runc' | 'crun';
  verb: RuntimeVerb;
  msg: string;
  code: ErrorCode;
  /** substring the message must contain (default: msg itself) */
  says?: string;
}

const observed: Row[] = [
  // ---- runc 1.1.5
  { runtime: 'runc', verb: 'create', msg: 'runc create failed: container with given ID already exists', code: 'AlreadyExists' },
  {
    runtime: 'runc',
    verb: 'create',
    msg: 'runc create failed: unable to start container process: exec: "nonexistent-cmd": executable file not found in $PATH',
    code: 'Unknown',
    says: 'OCI runtime create failed: runc create failed: unable to start container process',
  },
  {
    runtime: 'runc',
    verb: 'create',
    msg: 'runc create failed: unable to start container process: exec: "/bin/nonexist": stat /bin/nonexist: no such file or directory',
    code: 'Unknown',
  },
  {
    runtime: 'runc',
    verb: 'exec',
    msg: 'exec failed: unable to start container process: exec: "nonexist": executable file not found in $PATH',
    code: 'Unknown',
    says: 'OCI runtime exec failed: exec failed: unable to start container process',
  },
  { runtime: 'runc', verb: 'exec', msg: 'exec failed: cannot exec in a paused container (use --ignore-paused to override)', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'exec', msg: 'exec failed: cannot exec in a stopped container', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'exec', msg: 'exec failed: container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'start', msg: 'cannot start an already running container', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'start', msg: 'cannot start a container that has stopped', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'start', msg: 'container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'pause', msg: 'container not running', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'resume', msg: 'container not paused', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'update', msg: 'container not running', code: 'FailedPrecondition' },
  {
    runtime: 'runc',
    verb: 'update',
    msg: 'json: cannot unmarshal string into Go struct field LinuxMemory.memory.limit of type int64',
    code: 'InvalidArgument',
  },
  { runtime: 'runc', verb: 'kill', msg: 'container not running', code: 'NotFound', says: 'process already finished: container not running' },
  { runtime: 'runc', verb: 'kill', msg: 'container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'kill', msg: 'unknown signal "FOO"', code: 'InvalidArgument' },
  { runtime: 'runc', verb: 'kill', msg: 'unable to signal init: invalid argument', code: 'Unknown' },
  { runtime: 'runc', verb: 'delete', msg: 'container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'delete', msg: 'cannot delete container c4 that is not stopped: running', code: 'FailedPrecondition' },
  { runtime: 'runc', verb: 'ps', msg: 'container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'state', msg: 'container does not exist', code: 'NotFound' },
  { runtime: 'runc', verb: 'features', msg: "No help topic for 'features'", code: 'Unimplemented' },
  {
    runtime: 'runc',
    verb: 'checkpoint',
    msg: 'criu failed: type DUMP errno 0\nlog file: /tmp/b/criu-work/dump.log',
    code: 'Unknown',
    says: 'OCI runtime checkpoint failed: criu failed: type DUMP errno 0',
  },
  // ---- crun 1.8.1
  { runtime: 'crun', verb: 'create', msg: 'container `c1` already exists', code: 'AlreadyExists' },
  {
    runtime: 'crun',
    verb: 'create',
    msg: 'executable file `nonexistent-cmd` not found in $PATH: No such file or directory',
    code: 'Unknown',
    says: 'OCI runtime create failed: executable file `nonexistent-cmd` not found',
  },
  { runtime: 'crun', verb: 'create', msg: 'cgroups in hybrid mode not supported, drop all controllers from cgroupv2', code: 'Unknown' },
  { runtime: 'crun', verb: 'exec', msg: 'executable file `nonexist` not found in $PATH: No such file or directory', code: 'Unknown' },
  { runtime: 'crun', verb: 'exec', msg: 'the container `c1` is paused', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'exec', msg: 'the container `c1` is not running', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'start', msg: 'cannot open `/run/crun/c1/exec.fifo`: No such file or directory', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'start', msg: 'error opening file `/run/crun/nope/status`: No such file or directory', code: 'NotFound' },
  { runtime: 'crun', verb: 'pause', msg: 'the container `c1` is not running', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'resume', msg: 'the container `c1` is not running', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'update', msg: 'container `c1` is not running', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'kill', msg: 'kill container: No such process', code: 'NotFound', says: 'process already finished' },
  { runtime: 'crun', verb: 'kill', msg: 'error opening file `/run/crun/nope/status`: No such file or directory', code: 'NotFound' },
  { runtime: 'crun', verb: 'kill', msg: 'send signal to pidfd: Invalid argument', code: 'Unknown' },
  { runtime: 'crun', verb: 'delete', msg: "cannot open directory '/run/crun/c1': No such file or directory", code: 'NotFound' },
  { runtime: 'crun', verb: 'delete', msg: 'the container `c4` is not in `created` or `stopped` state', code: 'FailedPrecondition' },
  { runtime: 'crun', verb: 'features', msg: 'unknown command features', code: 'Unimplemented' },
  { runtime: 'crun', verb: 'checkpoint', msg: 'unknown command checkpoint', code: 'Unimplemented' },
];

describe('classifyRuntimeError on observed runtime messages', () => {
  it.each(observed)('$runtime $verb: $msg → $code', ({ runtime, verb, msg, code, says }) => {
    const fromLog = classifyRuntimeError(verb, '', msg, 1, { binary: runtime });
    expect(fromLog.code).toBe(code);
    expect(fromLog.message).toContain(says ?? msg.split('\n')[0]);
    // the same text on stderr only (crun `ps` logs nothing to --log) classifies the same way
    const fromStderr = classifyRuntimeError(verb, `${msg}\n`, undefined, 1, { binary: runtime });
    expect(fromStderr.code).toBe(code);
  });
});

describe('classifyRuntimeError without runtime text', () => {
  it('names a missing runtime binary and does not call it NotFound', () => {
    const e = classifyRuntimeError('create', '', undefined, undefined, { binary: 'crun-missing', spawnErrno: 'ENOENT' });
    expect(e.code).toBe('FailedPrecondition');
    expect(e.message).toContain('"crun-missing" not found');
  });

  it('reports a deadline as DeadlineExceeded with the verb and the time', () => {
    const e = classifyRuntimeError('start', '', undefined, undefined, { binary: 'runc', timedOut: true, timeoutMs: 10_000 });
    expect(e.code).toBe('DeadlineExceeded');
    expect(e.message).toBe('OCI runtime start timed out after 10000 ms: runc was killed');
  });

  it('describes a crash by its signal (crun ps on a stopped container: SIGSEGV)', () => {
    const e = classifyRuntimeError('ps', '', undefined, undefined, { binary: 'crun', signal: 'SIGSEGV' });
    expect(e.code).toBe('Unknown');
    expect(e.message).toBe('OCI runtime ps failed: crun was killed by SIGSEGV');
  });

  it('falls back to the exit status', () => {
    const e = classifyRuntimeError('ps', '  \n', undefined, 253, { binary: 'crun' });
    expect(e.message).toBe('OCI runtime ps failed: crun exited with status 253');
  });

  it('prefers the log message over stderr, and clips very long text', () => {
    const e = classifyRuntimeError('create', 'stderr text', 'log text', 1);
    expect(e.message).toBe('OCI runtime create failed: log text');
    const long = classifyRuntimeError('update', 'x'.repeat(5000), undefined, 1);
    expect(long.message.length).toBeLessThan(2100);
  });

  it('maps EACCES on spawn to PermissionDenied', () => {
    expect(classifyRuntimeError('start', '', undefined, undefined, { spawnErrno: 'EACCES' }).code).toBe('PermissionDenied');
  });
});

describe('lastLogError', () => {
  it('takes the last error-level msg, skipping other levels and broken lines', () => {
    const log = [
      '{"level":"error","msg":"first","time":"t"}',
      '{"level":"warning","msg":"a warning","time":"t"}',
      '{"msg":"container `c1` already exists","level":"error","time":"t"}',
      '{"level":"info","msg":"later info"}',
      '{"level":"error","msg":"trunc',
      '',
    ].join('\n');
    expect(lastLogError(log)).toBe('container `c1` already exists');
  });

  it('reads objects written back to back without newlines (runsc), as Go\'s json.Decoder does', () => {
    const log =
      '{"msg":"error setting up FS: mounting {Destination:/x Type:bind}: stat /src: no such file","level":"error","time":"t"}' +
      '{"msg":"a \\"quoted\\" } brace","level":"warning","time":"t"}' +
      '{"msg":"creating container: cannot create sandbox: waiting for sandbox to start: EOF","level":"error","time":"t"}\n';
    expect(logErrors(log)).toEqual([
      'error setting up FS: mounting {Destination:/x Type:bind}: stat /src: no such file',
      'creating container: cannot create sandbox: waiting for sandbox to start: EOF',
    ]);
    expect(lastLogError(log)).toBe('creating container: cannot create sandbox: waiting for sandbox to start: EOF');
    // a cut-off object does not swallow the line after it
    expect(lastLogError('{"level":"error","msg":"cut {\n{"level":"error","msg":"whole"}\n')).toBe('whole');
  });

  it('returns undefined when nothing was logged', () => {
    expect(lastLogError('')).toBeUndefined();
    expect(lastLogError('{"level":"warning","msg":"w"}\n')).toBeUndefined();
  });
});
