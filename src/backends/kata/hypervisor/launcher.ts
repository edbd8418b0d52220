/**
 * How the hypervisor side starts its long-running host processes (QEMU, virtiofsd,
 * vhost-device-vsock) and learns of their exits.
 *
 * Inside the shim a Reaper (src/sys/reaper.ts) reaps every child: a process spawned through
 * child_process would race it (libuv's waitpid vs ours). There `reaperLauncher` spawns with
 * posix_spawn (src/sys/ffi.ts) and routes the Reaper's exits by pid. Where no Reaper runs
 * (tests, tools), `childProcessLauncher` uses child_process and its 'exit' event.
 */
import { closeSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { ExitSubscription } from '../../../core/backend.js';
import { notFound } from '../../../core/errors.js';
import type { Reaper } from '../../../sys/reaper.js';
import * as ffi from '../../../sys/ffi.js';
import { builtin } from '../../../sys/lazy-builtins.js';

export interface LaunchedProcess {
  readonly pid: number;
  /** exit code, or 128 + signal */
  readonly exited: Promise<{ status: number }>;
}

export interface LaunchOptions {
  /** stdout and stderr go to this file (appended) */
  logFile: string;
  /** the environment; default: this process's */
  env?: NodeJS.ProcessEnv;
}

export interface ProcessLauncher {
  /** throws a ShimError (NotFound, PermissionDenied, ...) when the program cannot be started */
  launch(file: string, args: string[], opts: LaunchOptions): LaunchedProcess;
}

function envList(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
}

/** posix_spawn + the shim's Reaper: the only safe way where a Reaper runs. */
export function reaperLauncher(reaper: Reaper): ProcessLauncher {
  const waiting = new Map<number, (e: { status: number }) => void>();
  let subscription: ExitSubscription | undefined;
  const subscribe = (): ExitSubscription => {
    if (subscription) return subscription;
    const sub = reaper.subscribe();
    sub.onExit((e) => {
      const done = waiting.get(e.pid);
      if (!done) return;
      waiting.delete(e.pid);
      sub.take(e.pid);
      done({ status: e.status });
    });
    subscription = sub;
    return sub;
  };
  return {
    launch(file, args, opts) {
      subscribe();
      const log = openSync(opts.logFile, 'a', 0o640);
      let pid: number;
      try {
        pid = ffi.posixSpawn(file, [file, ...args], envList(opts.env ?? process.env), [
          { child: 0, from: 'devnull' },
          { child: 1, from: log },
          { child: 2, from: log },
        ], { resetSignals: true });
      } finally {
        closeSync(log);
      }
      // JS runs to completion: the Reaper cannot deliver this exit before the route is set
      const exited = new Promise<{ status: number }>((resolve) => waiting.set(pid, resolve));
      reaper.want(pid);
      return { pid, exited };
    },
  };
}

/** child_process: for processes without a Reaper (tests, command-line tools). */
export function childProcessLauncher(): ProcessLauncher {
  return {
    launch(file, args, opts) {
      const { spawn } = builtin('node:child_process');
      const log = openSync(opts.logFile, 'a', 0o640);
      try {
        const child = spawn(file, args, { stdio: ['ignore', log, log], env: opts.env ?? process.env });
        const exited = new Promise<{ status: number }>((resolve) => {
          child.once('exit', (code, signal) => {
            resolve({ status: code ?? 128 + (signal ? osConstants.signals[signal] : 0) });
          });
          // a spawn failure (ENOENT) is reported as 'error', followed by no 'exit'
          child.once('error', () => resolve({ status: 127 }));
        });
        if (child.pid === undefined) throw notFound(`cannot start ${file}`);
        return { pid: child.pid, exited };
      } finally {
        closeSync(log);
      }
    },
  };
}
