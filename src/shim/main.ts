/**
 * Entry point of containerd-shim-tsshim-v2. Each action loads only what it needs:
 * `start` and `delete` run once per container on containerd's critical path.
 */
import { parseArgs } from './args.js';
import { SHIM_VERSION } from './version.js';

export async function main(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (args.version) {
    process.stdout.write(`containerd-shim-tsshim-v2:\n  Version: ${SHIM_VERSION}\n  Runtime: node ${process.version}\n`);
    return;
  }
  if (args.info) {
    const { runInfo } = await import('./info.js');
    await writeAndExit(await runInfo(args), 0);
    return;
  }
  switch (args.action) {
    case 'start': {
      try {
        const { runStart } = await import('./start.js');
        await writeAndExit(await runStart(args), 0);
      } catch (err) {
        // containerd shows start's combined output as the error text
        await writeAndExit(`tsshim start: ${(err as Error).message}\n`, 1);
      }
      return;
    }
    case 'delete': {
      const { runDelete } = await import('./delete.js');
      try {
        await writeAndExit(await runDelete(args), 0);
      } catch (err) {
        process.stderr.write(`tsshim delete: ${(err as Error).message}\n`);
        process.exit(1);
      }
      return;
    }
    case 'check': {
      // an operator's command, not containerd's: whether this host can run each backend
      const { runCheck } = await import('./host-check.js');
      const { shimArgv0 } = await import('./daemon-launch.js');
      const { out, code } = await runCheck(args.rest, shimArgv0());
      await writeAndExit(out, code);
      return;
    }
    case 'serve': {
      const { runDaemon } = await import('./daemon.js');
      await runDaemon(args);
      return;
    }
    default:
      process.stderr.write(`containerd-shim-tsshim-v2: unknown action "${args.action}" (want start, delete, serve, check, -v or -info)\n`);
      process.exit(2);
  }
}

/** write everything to stdout, then exit without waiting for anything else */
function writeAndExit(out: string | Uint8Array, code: number): Promise<void> {
  return new Promise(() => {
    process.stdout.write(out, () => process.exit(code));
  });
}
