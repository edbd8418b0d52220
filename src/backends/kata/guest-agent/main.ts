/**
 * tsshim's Kata guest agent: serves Kata's `grpc.AgentService` (and `grpc.Health`) over
 * ttrpc on a unix socket and runs the containers with the native executor. In the VM, the
 * init (src/backends/kata/guest/init.c) relays vsock connections to this socket and powers
 * off when the agent exits, which it does after DestroySandbox.
 *
 *   node guest-agent.mjs [--socket <path>] [--shared-root <dir>] [--run-dir <dir>]
 *                        [--cgroup-parent <path>] [--net-ok]
 *
 * --socket         default $TSSHIM_AGENT_SOCKET, else /run/kata-agent.sock
 * --shared-root    host-test mode: this host dir stands for the guest's shared dir
 *                  (/run/kata-containers/shared/containers/); nothing is mounted, the
 *                  hostname is not set and the network is left alone (unless --net-ok)
 * --run-dir        bundles and executor state (default /run/kata-containers)
 * --cgroup-parent  put every container's cgroup below this one (tests)
 * --net-ok         host-test mode: the network verbs may run (the agent is in its own netns)
 * The executor binary: $TSSHIM_NATIVE_HELPER, else `tsshim-exec` next to this file.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeBackend } from '../../native/backend.js';
import { HELPER_ENV, HELPER_NAME } from '../../native/helper-client.js';
import { Reaper } from '../../../sys/reaper.js';
import { listenPipe } from '../../../sys/uv-pipe.js';
import { TtrpcServer } from '../../../ttrpc/server.js';
import { GuestAgent, loadFfi, type Log } from './agent.js';
import { GuestNetwork } from './network.js';
import { GUEST_RUN_DIR, GuestPaths } from './paths.js';
import { agentErrorToStatus, registerAgentService } from './service.js';

const DEFAULT_SOCKET = '/run/kata-agent.sock';
/** time for DestroySandbox's answer to leave before the agent exits */
const EXIT_GRACE_MS = 200;

interface Args {
  socket: string;
  sharedRoot?: string;
  runDir: string;
  cgroupParent?: string;
  netOk: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { socket: process.env.TSSHIM_AGENT_SOCKET || DEFAULT_SOCKET, runDir: GUEST_RUN_DIR, netOk: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--socket') args.socket = value();
    else if (a === '--shared-root') args.sharedRoot = resolve(value());
    else if (a === '--run-dir') args.runDir = resolve(value());
    else if (a === '--cgroup-parent') args.cgroupParent = value();
    else if (a === '--net-ok') args.netOk = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

/** one JSON line per event on stderr (the VM's console) */
const log: Log = (msg, fields) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), agent: 'tsshim', msg, ...fields })}\n`);
};

function helperPath(): string {
  const fromEnv = process.env[HELPER_ENV];
  if (fromEnv) return fromEnv;
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, HELPER_NAME), join(here, 'tsshim-native-helper'), join(here, '../native', HELPER_NAME)]) {
    if (existsSync(candidate)) return candidate;
  }
  return join(here, HELPER_NAME);
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`tsshim guest agent: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const inVm = args.sharedRoot === undefined;
  // Before any container process exists: orphans must come to us, not to init.
  const reaper = Reaper.install({ onError: (err) => log('reaper', { err: String(err) }) });
  await loadFfi();
  const paths = new GuestPaths(args.sharedRoot, args.runDir);
  mkdirSync(paths.nativeRoot, { recursive: true, mode: 0o700 });
  const backend = new NativeBackend({
    root: join(paths.nativeRoot, 'kata'),
    exits: reaper,
    helperPath: helperPath(),
    onWarning: (w) => log('spec warning', { id: w.id, field: w.field, message: w.message }),
  });
  const agent = new GuestAgent({ paths, backend, log, cgroupParent: args.cgroupParent, ownsTheMachine: inVm });
  const net = new GuestNetwork({ allowed: inVm || args.netOk });

  const server = new TtrpcServer({ errorToStatus: agentErrorToStatus, onError: (err) => log('ttrpc', { err: String(err) }) });
  let exiting = false;
  const exit = (code: number) => {
    if (exiting) return;
    exiting = true;
    setTimeout(() => {
      void server.close().finally(() => {
        rmSync(args.socket, { force: true });
        log('agent exits', { code });
        process.exit(code);
      });
    }, EXIT_GRACE_MS);
  };
  registerAgentService(server, agent, net, { log, onDestroyed: () => exit(0) });

  rmSync(args.socket, { force: true });
  mkdirSync(dirname(args.socket), { recursive: true });
  const listener = await listenPipe({ path: args.socket });
  server.listen(listener);
  log('agent listening', { socket: args.socket, mode: inVm ? 'vm' : 'host-test', pid: process.pid });

  const stop = (signal: string) => {
    log('signal', { signal });
    void agent
      .destroySandbox()
      .catch((err: Error) => log('teardown at signal failed', { err: err.message }))
      .finally(() => exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// a crash ends the agent and so the VM: its reason must reach the console
process.on('uncaughtExceptionMonitor', (err) => log('agent crashed', { err: err?.stack ?? String(err) }));

main().catch((err) => {
  log('agent failed', { err: (err as Error).stack ?? String(err) });
  process.exit(1);
});
