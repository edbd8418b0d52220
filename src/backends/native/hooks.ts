/**
 * OCI hooks in the runtime's namespaces: prestart and createRuntime (while the container
 * process waits before pivot_root, see FRAME_HOOKS in helper-client.ts), poststart (after
 * start) and poststop (after delete). createContainer and startContainer run inside the
 * container, in the helper (helper/hooks.c).
 *
 * Each hook gets the container's state JSON on stdin and exactly the environment its
 * entry lists (as runc does); its output (the first KiB) goes into the error message; it
 * is killed at its timeout. The runtime spec says what a failure means: prestart,
 * createRuntime (and createContainer) fail the create; poststart and poststop only warn.
 */
import { ShimError } from '../../core/errors.js';
import { HOOK_PID_WIDTH, HookKindCode, type PlanHooks } from './plan.js';
import type { HookKind, OciHook, OciHooks } from './spec.js';
import { childProcess } from '../../sys/lazy-builtins.js';

export interface HookState {
  ociVersion: string;
  id: string;
  status: 'creating' | 'created' | 'running' | 'stopped';
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
}

const OUTPUT_MAX = 1024;

/** the state as the runtime spec shapes it (field order as runc writes it) */
export function stateJson(s: HookState): string {
  return JSON.stringify({ ociVersion: s.ociVersion, id: s.id, status: s.status, pid: s.pid, bundle: s.bundle, annotations: s.annotations });
}

/**
 * The state for a hook inside the container, with a pid field the container process
 * fills in: HOOK_PID_WIDTH bytes at pidOffset (a byte offset), a space-padded 0 for now.
 */
export function stateTemplate(s: Omit<HookState, 'pid'>): { json: string; pidOffset: number } {
  const json = stateJson({ ...s, pid: 0 });
  // the first "pid":0 is our key: quotes inside values are escaped, and only
  // ociVersion/id/status (no quotes in them unescaped either) come before it
  const at = json.indexOf('"pid":0') + '"pid":'.length;
  const padded = `${json.slice(0, at)}${'0'.padStart(HOOK_PID_WIDTH, ' ')}${json.slice(at + 1)}`;
  return { json: padded, pidOffset: Buffer.byteLength(json.slice(0, at)) };
}

/** what of the hooks the helper needs; undefined when there is nothing for it to do */
export function planHooks(hooks: OciHooks, state: Omit<HookState, 'pid' | 'status'>): PlanHooks | undefined {
  const inContainer = [
    ...(hooks.createContainer ?? []).map((h) => ({ ...h, kind: HookKindCode.createContainer })),
    ...(hooks.startContainer ?? []).map((h) => ({ ...h, kind: HookKindCode.startContainer })),
  ];
  const pause = !!(hooks.prestart?.length || hooks.createRuntime?.length);
  if (!pause && inContainer.length === 0) return undefined;
  const states: PlanHooks['states'] = [];
  if (hooks.createContainer?.length) states.push({ which: 0, ...stateTemplate({ ...state, status: 'creating' }) });
  if (hooks.startContainer?.length) states.push({ which: 1, ...stateTemplate({ ...state, status: 'created' }) });
  return { pause, inContainer, states };
}

function runOne(kind: HookKind, hook: OciHook, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const e of hook.env) {
      const eq = e.indexOf('=');
      if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
    }
    const [argv0, ...rest] = hook.args.length > 0 ? hook.args : [hook.path];
    const child = childProcess().spawn(hook.path, rest, { argv0, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const collect = (d: Buffer) => {
      if (output.length < OUTPUT_MAX) output += d.toString('utf8').slice(0, OUTPUT_MAX - output.length);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    // a hook that exits without reading its stdin: its exit status decides, not EPIPE
    child.stdin.on('error', () => undefined);
    let timedOut = false;
    const timer =
      hook.timeout !== undefined
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, hook.timeout * 1000)
        : undefined;
    const what = `${kind} hook ${hook.path}`;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new ShimError('FailedPrecondition', `${what}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const out = output.trim();
      if (timedOut) reject(new ShimError('DeadlineExceeded', `${what}: timed out after ${hook.timeout} s`));
      else if (code === 0) resolve();
      else reject(new ShimError('Unknown', `${what} failed: ${signal ? `killed by signal ${signal}` : `exit status ${code}`}${out ? `: ${out}` : ''}`));
    });
    child.stdin.end(input);
  });
}

/** Runs the hooks in order; the first failure rejects (the rest do not run). */
export async function runHooks(kind: HookKind, hooks: OciHook[] | undefined, state: HookState): Promise<void> {
  if (!hooks?.length) return;
  const input = stateJson(state);
  for (const h of hooks) await runOne(kind, h, input);
}

/**
 * Runs every hook whatever the others do (poststart, poststop: failures are warnings);
 * returns the failures' messages.
 */
export async function runHooksReportingFailures(kind: HookKind, hooks: OciHook[] | undefined, state: HookState): Promise<string[]> {
  const failures: string[] = [];
  if (!hooks?.length) return failures;
  const input = stateJson(state);
  for (const h of hooks) {
    try {
      await runOne(kind, h, input);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  return failures;
}
