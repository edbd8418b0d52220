/**
 * The one place where a runc-compatible CLI's failure becomes a ShimError. The core
 * branches on codes only (NotFound, AlreadyExists, FailedPrecondition, ...), so every
 * runtime wording we know of is mapped here, per verb, and nowhere else.
 *
 * The patterns come from what runc 1.1.5 and crun 1.8.1 print on this project's
 * machines (see test/unit/backend-runc-errors.test.ts for the observed strings).
 */
import { ShimError, type ErrorCode } from '../../core/errors.js';

export type RuntimeVerb =
  | 'create'
  | 'start'
  | 'exec'
  | 'kill'
  | 'delete'
  | 'state'
  | 'ps'
  | 'pause'
  | 'resume'
  | 'update'
  | 'checkpoint'
  | 'restore'
  | 'features'
  | 'events';

/** How the runtime invocation ended, besides its exit code and text. */
export interface RuntimeFailureContext {
  /** runtime binary, for messages ("runc", "crun", a path) */
  binary?: string;
  /** our deadline fired and the runtime was killed */
  timedOut?: boolean;
  timeoutMs?: number;
  /** errno of a spawn that never started (ENOENT: binary missing) */
  spawnErrno?: string;
  /** signal that ended the runtime when we did not kill it (a crash) */
  signal?: string;
}

/** Longest runtime text we carry in a message; runc prints whole usage pages on misuse. */
const MAX_TEXT = 2000;

const UNSUPPORTED = [
  /unknown command\b/i, // crun: "unknown command features"
  /no help topic for/i, // runc: "No help topic for 'foo'"
];

const CONTAINER_NOT_FOUND = [
  /container does not exist/i, // runc
  /no such container/i,
  /container [`'"][^`'"]+[`'"] not found/i,
  // crun reads <root>/<id>/status for every verb on an existing container
  /error opening file `[^`]*\/status`: no such file or directory/i,
  // crun delete of an unknown id
  /cannot open directory '[^']*': no such file or directory/i,
  // runsc: loading container "c1": file does not exist
  /loading (container|sandbox)\b[^:]*: file does not exist/i,
];

/** kill of a process that is gone (containerd: NotFound "process already finished") */
const KILL_FINISHED = [
  /container not running/i, // runc
  /is not running/i, // crun: "the container `c1` is not running"
  /process already finished/i,
  /no such process/i, // crun: "kill container: No such process"
];

const ALREADY_EXISTS = [
  /container with given id already exists/i, // runc
  /container [`'"][^`'"]*[`'"] already exists/i, // crun
];

/** the request itself is malformed (bad signal, resources JSON the runtime rejects) */
const INVALID_REQUEST = [
  /unknown signal/i, // runc: unknown signal "FOO"
  /json: cannot unmarshal/i, // runc update --resources with a wrong type
];

const WRONG_STATE = [
  /container (is )?not (running|paused|stopped)/i, // runc: "container not running", "container not paused"
  /container is paused/i,
  /the container [`'"][^`'"]*[`'"] is (paused|not running)/i, // crun
  /container [`'"][^`'"]*[`'"] is not running/i, // crun update
  /is not in [`'"][^`'"]*[`'"]( or [`'"][^`'"]*[`'"])? state/i, // crun delete of a running container
  /\bcannot (start|exec|delete|pause|resume|update|checkpoint|kill)\b[^:]*\b(container|process)\b/i, // runc
  /exec\.fifo`?: no such file or directory/i, // crun start of an already started container
  /cannot signal container [`'"][^`'"]*[`'"] in state/i, // runsc 2022: kill of a created container
  /container [`'"]?[^`'"]*[`'"]? in state \w+ cannot be/i,
];

function matches(patterns: RegExp[], text: string): boolean {
  return patterns.some((p) => p.test(text));
}

function clip(text: string): string {
  const t = text.trim();
  return t.length > MAX_TEXT ? `${t.slice(0, MAX_TEXT)}…` : t;
}

/**
 * Classifies one failed runtime invocation. `logMsg` is the last error-level `msg` the
 * runtime wrote to its --log file during this invocation; it is preferred to stderr
 * because stderr is not ours for create/exec (it is the container's stderr).
 */
export function classifyRuntimeError(
  verb: RuntimeVerb,
  stderr: string,
  logMsg: string | undefined,
  exitCode: number | undefined,
  ctx: RuntimeFailureContext = {},
): ShimError {
  const binary = ctx.binary ?? 'runtime';
  const make = (code: ErrorCode, message: string) => new ShimError(code, message);

  if (ctx.spawnErrno === 'ENOENT') {
    return make(
      'FailedPrecondition',
      `OCI runtime ${verb} failed: runtime binary "${binary}" not found (is it installed and on PATH?)`,
    );
  }
  if (ctx.spawnErrno === 'EACCES' || ctx.spawnErrno === 'EPERM') {
    return make('PermissionDenied', `OCI runtime ${verb} failed: cannot execute "${binary}" (${ctx.spawnErrno})`);
  }
  if (ctx.spawnErrno) {
    return make('Unknown', `OCI runtime ${verb} failed: cannot spawn "${binary}" (${ctx.spawnErrno})`);
  }
  if (ctx.timedOut) {
    const after = ctx.timeoutMs !== undefined ? ` after ${ctx.timeoutMs} ms` : '';
    return make('DeadlineExceeded', `OCI runtime ${verb} timed out${after}: ${binary} was killed`);
  }

  const runtimeText = clip(logMsg?.trim() ? logMsg : stderr);
  const text =
    runtimeText ||
    (ctx.signal ? `${binary} was killed by ${ctx.signal}` : `${binary} exited with status ${exitCode ?? 'unknown'}`);
  const failed = `OCI runtime ${verb} failed: ${text}`;

  if (matches(UNSUPPORTED, text)) {
    return make('Unimplemented', `${binary} does not support "${verb}": ${text}`);
  }
  if (matches(CONTAINER_NOT_FOUND, text)) {
    return make('NotFound', failed);
  }
  if (verb === 'kill' && matches(KILL_FINISHED, text)) {
    return make('NotFound', `process already finished: ${text}`);
  }
  if (matches(ALREADY_EXISTS, text)) {
    return make('AlreadyExists', failed);
  }
  if (matches(INVALID_REQUEST, text)) {
    return make('InvalidArgument', failed);
  }
  if (matches(WRONG_STATE, text)) {
    return make('FailedPrecondition', failed);
  }
  return make('Unknown', failed);
}

/**
 * The objects of a runtime JSON log, in order. runc and crun write one per line; runsc writes
 * them back to back without newlines (its sandbox and gofer write to the same file), which
 * the reference shim's decoder (Go's json.Decoder) reads as well. Text that is not a whole
 * object is skipped: a crash can leave half of one.
 */
export function logEntries(logText: string): Array<{ level?: unknown; msg?: unknown }> {
  const entries: Array<{ level?: unknown; msg?: unknown }> = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < logText.length; i++) {
    const ch = logText[i];
    if (ch === '\n') {
      // JSON writers escape newlines in strings and put none inside an object: an object
      // still open here was cut off (a crash)
      depth = 0;
      inString = false;
      escaped = false;
      continue;
    }
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') {
      if (depth > 0) inString = true;
    } else if (ch === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (ch === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        try {
          const entry = JSON.parse(logText.slice(start, i + 1)) as unknown;
          if (entry && typeof entry === 'object' && !Array.isArray(entry)) entries.push(entry as { level?: unknown; msg?: unknown });
        } catch {
          // not an object after all
        }
      }
    }
  }
  return entries;
}

/** every error-level `msg` of a runtime JSON log, in order */
export function logErrors(logText: string): string[] {
  const errors: string[] = [];
  for (const entry of logEntries(logText)) {
    if (entry.level === 'error' && typeof entry.msg === 'string' && entry.msg.trim()) errors.push(entry.msg.trim());
  }
  return errors;
}

/**
 * The last error-level `msg` of a runtime JSON log, like the reference shim's
 * getLastRuntimeError.
 */
export function lastLogError(logText: string): string | undefined {
  return logErrors(logText).pop();
}
