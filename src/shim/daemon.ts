/**
 * Serve mode: the long-lived shim process of one group (a container, a pod, or a whole
 * namespace). It inherits the listening socket from `start` as fd 3, becomes the child
 * subreaper of the containers, serves the Task API over ttrpc and forwards events.
 * It exits after Shutdown once no container is left (or on SIGTERM/SIGINT).
 */
import { fstatSync, statSync, unlinkSync } from 'node:fs';
import type { ShimArgs } from './args.js';
import { loadConfig } from './config.js';
import { createShimLog, coreLogger } from './logger.js';
import { TaskCore, type ProcessIo, type StdioUris } from '../core/task-core.js';
import { TtrpcServer } from '../ttrpc/server.js';
import { errorToStatus } from './status.js';
import { registerTaskService } from './task-service.js';
import { EventForwarder } from './event-forwarder.js';
import { TtrpcForwardTransport } from './forward-transport.js';
import { encodeForward } from './event-encoding.js';
import { BackendRegistry, aliasFromBinary } from './backend-registry.js';
import { decodeRuntimeOptions } from './runtime-options.js';
import { Reaper } from '../sys/reaper.js';
import { OomWatcher } from '../sys/oom.js';
import { RootfsMounts } from '../sys/rootfs.js';
import { mallocTrim, setWinsize, v8LowMemoryNotification } from '../sys/ffi.js';
import { MemoryTrimmer, releaseIdleMemory } from './memory-trimmer.js';
import { openProcessIo } from '../io/process-io.js';
import { shimArgv0 } from './daemon-launch.js';
import { markDeleted } from './bundle-state.js';
import { listenPipe, type ByteStreamListener } from '../sys/uv-pipe.js';

const INHERITED_LISTENER_FD = 3;
/**
 * How long a shim's last lines may wait for containerd to read them (a full pipe, then
 * until the pipe is empty). Bounded: a containerd that stopped reading must not keep a
 * shim from exiting, nor hold up a Shutdown answer for long.
 */
const FINAL_LOG_MS = 500;

export interface DaemonOptions {
  /** the group's listening socket, when not inherited as fd 3 (a spare's adoption) */
  listenerFd?: number;
  /** this daemon was a spare booted ahead of its start (logged, for operators and benches) */
  adopted?: boolean;
}

export async function runDaemon(args: ShimArgs, opts: DaemonOptions = {}): Promise<void> {
  const bundle = process.cwd();
  // A config error here is logged; Create reports it to containerd with the details.
  let config;
  let configError: unknown;
  try {
    config = loadConfig();
  } catch (err) {
    configError = err;
    config = (await import('./config.js')).defaultConfig();
  }
  const level = args.debug ? 'debug' : config.shim.logLevel;
  const shimLog = createShimLog({ bundle, level, namespace: args.namespace, id: args.id });
  const logger = shimLog.logger;
  const log = coreLogger(logger);
  if (configError) logger.error({ err: (configError as Error).message }, 'tsshim config');

  // Must happen before any container process exists, or orphans escape to init.
  const reaper = Reaper.install();

  const forwarder = new EventForwarder({
    encode: (e, at) => encodeForward(args.namespace, e, at),
    transport: new TtrpcForwardTransport(process.env.TTRPC_ADDRESS ?? '', args.namespace),
    log,
  });
  const registry = new BackendRegistry(config, args.namespace, reaper, aliasFromBinary(shimArgv0()), (w) =>
    logger.warn({ container: w.id, field: w.field }, w.message),
  );
  let core: TaskCore;
  const oom = new OomWatcher((id: string) => core.reportOom(id), {
    onError: (err) => logger.warn({ err: (err as Error)?.message }, 'oom watcher'),
  });
  const rootfs = new RootfsMounts();
  core = new TaskCore({
    namespace: args.namespace,
    events: forwarder,
    selectBackend: (input, annotations) => registry.select(input, annotations),
    io: {
      open: (uris: StdioUris, ctx): Promise<ProcessIo> => openProcessIo(uris, { ...ctx, setWinsize }),
    },
    rootfs,
    oom,
    log,
    // lets the launcher answer containerd's `delete` for this bundle without Node
    onDeleted: markDeleted,
  });

  const trimmer = new MemoryTrimmer({
    trim: releaseIdleMemory({
      v8: v8LowMemoryNotification,
      malloc: mallocTrim,
      onV8Error: (err) => logger.warn({ err: (err as Error)?.message }, 'V8 low-memory notification unavailable; trimming malloc only'),
    }),
    onError: (err) => logger.warn({ err: (err as Error)?.message }, 'idle memory release'),
  });
  const ttrpc = new TtrpcServer({
    errorToStatus,
    onError: (err, connectionId) => logger.warn({ err: (err as Error)?.message, connectionId }, 'ttrpc'),
    onActivity: () => trimmer.activity(),
  });

  let shuttingDown = false;
  const socketPath = args.socket;
  const listenerFd = opts.listenerFd ?? INHERITED_LISTENER_FD;
  const inherited = isSocket(listenerFd);
  // the socket file's inode now, while the path is certainly ours
  const socketIno = socketPath ? fileInode(socketPath) : undefined;

  let listener: ByteStreamListener | undefined;
  // The last line, with the reason, must be in containerd's log: written even to a full
  // pipe (bounded), and read by containerd before we answer Shutdown or end.
  let exitAnnounced = false;
  const announceExit = (reason: string) => {
    if (exitAnnounced) return;
    exitAnnounced = true;
    shimLog.final(FINAL_LOG_MS);
    logger.info({ reason }, 'shim exiting');
    shimLog.settle(FINAL_LOG_MS);
  };
  // any other way out (a process.exit elsewhere, e.g. after a failed listen) still says why
  process.on('exit', (code) => announceExit(`exit code ${code}`));
  const exit = async (reason: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    trimmer.close();
    announceExit(reason);
    listener?.close();
    // only remove the socket if it is still ours (a new daemon may own the path)
    if (socketPath) {
      try {
        if (statSync(socketPath).ino === socketIno) unlinkSync(socketPath);
      } catch {
        /* already gone */
      }
    }
    // Events still queued must reach containerd (bounded); calls still in flight (a Wait
    // containerd left open) have nothing left to wait for once no container remains.
    const flushed = await forwarder.flush(5000);
    if (!flushed) logger.warn({ pending: forwarder.pending }, 'exiting with undelivered events');
    forwarder.close();
    shimLog.settle(FINAL_LOG_MS);
    process.exit(0);
  };

  registerTaskService(ttrpc, core, {
    shimPid: process.pid,
    log: logger,
    shutdown: () => {
      if (core.size > 0) return;
      // containerd closes the log FIFO as soon as Shutdown has answered: say so first
      announceExit('shutdown');
      // let the Shutdown response go out first
      setImmediate(() => void exit('shutdown'));
    },
    decodeOptions: (any) => {
      const decoded = decodeRuntimeOptions(any);
      if (decoded.ignoredType) logger.debug({ type: decoded.ignoredType }, 'ignoring runtime options of unknown type');
      return decoded;
    },
  });

  if (!inherited && !socketPath) throw new Error('serve: no inherited listener (fd 3) and no -socket');
  listener = await listenPipe(inherited ? { fd: listenerFd } : { path: socketPath! });
  ttrpc.listen(listener);

  process.on('SIGTERM', () => void exit('SIGTERM'));
  process.on('SIGINT', () => void exit('SIGINT'));
  // containerd's pipes are gone; a write error on a closed fd must not kill the shim
  process.on('SIGPIPE', () => undefined);
  process.on('uncaughtException', (err) => {
    logger.error({ err: err.message, stack: err.stack }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    logger.error({ err: (err as Error)?.message ?? String(err) }, 'unhandled rejection');
  });
  logger.info({ socket: socketPath, group: process.env.TSSHIM_GROUP, spare: opts.adopted === true }, 'shim serving');
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

function fileInode(p: string): number | undefined {
  try {
    return statSync(p).ino;
  } catch {
    return undefined;
  }
}
