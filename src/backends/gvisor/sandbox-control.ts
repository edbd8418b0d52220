/**
 * Waiting for an app container's exit on its sandbox's control socket, the urpc server inside
 * `runsc-sandbox` that runsc's own commands call: `runsc wait <id>` is one
 * `containerManager.Wait` call on it. Calling it from the shim spares a `runsc wait` process
 * per app container for the container's whole life. Measured here with runsc 2022, a pod with
 * two app containers: each such process held ~7 MiB PSS, and the two made the pod's host
 * memory 1.23x the reference's instead of ~1.02x.
 *
 * The wire (gVisor's pkg/urpc): on a unix stream socket, the call is one JSON object
 * `{"method": "containerManager.Wait", "arg": "<container id>"}` and the answer one JSON object
 * `{"success": bool, "err": string, "result": <wait status>}`, neither framed nor terminated
 * (each side decodes one JSON value from the stream). The result is the raw wait(2) status
 * the sandbox's kernel kept for the container's init.
 *
 * Where the socket is: runsc 2022 (bookworm) listens on the abstract address
 * `@runsc-sandbox.<sandbox id>@` (a trailing NUL is part of the name); later releases (bookworm-backports' 2024) on
 * `<runsc root>/runsc-<sandbox id>.sock`. Both were read off /proc/net/unix with real sandboxes.
 * A socket that cannot be reached (another layout, a path too long for sun_path) is the
 * caller's cue to run `runsc wait` instead.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { connectUnix } from '../../sys/ffi.js';
import { openPipeFd, type ByteStream } from '../../sys/uv-pipe.js';

const WAIT_METHOD = 'containerManager.Wait';
/** an answer is a few dozen bytes; anything this long is not runsc talking */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * where runsc's sandbox `sandboxId` (runsc state under `root`) takes control calls. runsc 2022
 * binds the abstract name with a trailing NUL in it (/proc/net/unix shows
 * `@runsc-sandbox.<id>@`), and abstract names match by exact length.
 */
export function controlSocketAddress(root: string, sandboxId: string): string {
  const file = join(root, `runsc-${sandboxId}.sock`);
  return existsSync(file) ? file : `\0runsc-sandbox.${sandboxId}\0`;
}

/** a wait(2) status as a container's exit status: the code, or 128 + the signal */
export function exitStatusOf(waitStatus: number): number {
  const signal = waitStatus & 0x7f;
  return signal === 0 ? (waitStatus >> 8) & 0xff : 128 + signal;
}

/**
 * The answer to a Wait call: the exit status, or undefined when the sandbox refused (no such
 * container) or hung up without answering (it died). Throws on a malformed answer.
 */
export function parseWaitAnswer(text: string): number | undefined {
  const answer = JSON.parse(text) as { success?: unknown; result?: unknown };
  if (answer.success !== true) return undefined;
  if (typeof answer.result !== 'number' || !Number.isInteger(answer.result) || answer.result < 0) {
    throw new Error(`containerManager.Wait answered ${text.slice(0, 200)}`);
  }
  return exitStatusOf(answer.result);
}

export interface ControlSocketWait {
  /** the container's exit status; undefined when the sandbox gave none (see parseWaitAnswer) */
  readonly status: Promise<number | undefined>;
  /** stop waiting (the container was deleted): status resolves undefined */
  cancel(): void;
}

/**
 * Connects to the sandbox's control socket and asks it to wait for `containerId`. Returns once
 * the call is sent (no deadline on the answer: it comes when the container exits). Throws
 * when the socket cannot be connected (a unix socket connects at once or not at all).
 */
export function waitOnControlSocket(address: string, containerId: string): ControlSocketWait {
  let stream: ByteStream;
  try {
    stream = openPipeFd(connectUnix(address));
  } catch (err) {
    throw new Error(`cannot reach the sandbox's control socket ${printable(address)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let settle!: (status: number | undefined) => void;
  const status = new Promise<number | undefined>((resolve) => (settle = resolve));
  let text = '';
  let done = false;
  const finish = (value: number | undefined) => {
    if (done) return;
    done = true;
    settle(value);
    stream.destroy();
  };
  stream.on('error', () => finish(undefined));
  stream.on('close', () => finish(undefined));
  stream.on('data', (chunk) => {
    text += chunk.toString('utf8');
    if (text.length > MAX_ANSWER_BYTES) return finish(undefined);
    let value: number | undefined;
    try {
      value = parseWaitAnswer(text);
    } catch (err) {
      // incomplete JSON: wait for the rest; a complete answer of the wrong shape ends it
      if (err instanceof SyntaxError) return;
      return finish(undefined);
    }
    finish(value);
  });
  stream.write(Buffer.from(JSON.stringify({ method: WAIT_METHOD, arg: containerId })));
  return { status, cancel: () => finish(undefined) };
}

function printable(address: string): string {
  // as /proc/net/unix shows an abstract name: every NUL as @
  return address.replace(/\0/g, '@');
}
