/**
 * What `ps` shows for the daemon. Every other shim's process reads `containerd-shim-…`
 * (containerd runs the runc shim as `<binary> -namespace <ns> -id <id> -address <addr>`,
 * plus `-debug`), and operators' scripts, monitoring and habits (`pgrep containerd-shim`,
 * `ps -ef | grep containerd-shim`) look for that. Our daemon is Node running a boot
 * script, with Node flags, so without this it would read `node … daemon-boot.cjs …`.
 *
 * Node has read its argv by the time the daemon's code runs (process.argv is a copy), so
 * the original argv memory, which /proc/<pid>/cmdline shows, is free to rewrite, as
 * setproctitle(3) does. We write the shim's arguments there, NUL-separated, through
 * /proc/self/mem: unlike process.title (one string, libuv) that keeps them separate
 * arguments, as the runc shim's are. The area keeps its length, so what follows our
 * arguments is NUL padding; `ps` and `pgrep -f` ignore trailing NULs. The process name
 * (/proc/<pid>/comm, what `pgrep` without -f matches) is the binary's base name cut to 15
 * bytes by the kernel: `containerd-shim`, as for the runc shim.
 *
 * Costs two small /proc reads and writes at boot (~0.1 ms). Best effort: where /proc/self/mem
 * is not writable, process.title (one string) is the fallback.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';

/** the runc shim's argv, as containerd's shim manager builds it */
export function shimCommandLine(a: { binary: string; namespace: string; id: string; address: string; debug: boolean }): string[] {
  return [a.binary, '-namespace', a.namespace, '-id', a.id, '-address', a.address, ...(a.debug ? ['-debug'] : [])];
}

/** [arg_start, arg_end) of this process: fields 48 and 49 of /proc/self/stat (50, 51: the environment's) */
function argArea(first = 48): { start: number; end: number } | undefined {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  // fields after the command name, which may contain spaces: [state (3), ppid (4), …]
  const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const start = Number(fields[first - 3]);
  const end = Number(fields[first + 1 - 3]);
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start > 0 && end > start ? { start, end } : undefined;
}

/** How it went: 'argv' (separate arguments), 'title' (process.title fallback) or 'failed'. */
export function setCommandLine(argv: string[]): 'argv' | 'title' | 'failed' {
  setProcessName(basename(argv[0] ?? ''));
  const text = Buffer.from(`${argv.join('\0')}\0`);
  try {
    const area = argArea();
    if (area && text.length <= area.end - area.start && !argv.some((a) => a.includes('\0'))) {
      const buf = Buffer.alloc(area.end - area.start); // the rest: NUL padding
      text.copy(buf);
      const fd = openSync('/proc/self/mem', 'r+');
      try {
        writeSync(fd, buf, 0, buf.length, area.start);
      } finally {
        closeSync(fd);
      }
      return 'argv';
    }
  } catch {
    // no /proc/self/mem write access (a hardened kernel): one string instead
  }
  try {
    process.title = argv.join(' ');
    // libuv's title setter also sets the process name (to the title's first 15 bytes)
    setProcessName(basename(argv[0] ?? ''));
    return 'title';
  } catch {
    return 'failed';
  }
}

/** /proc/<pid>/comm; the kernel keeps the first 15 bytes */
function setProcessName(name: string): void {
  if (!name) return;
  try {
    writeFileSync('/proc/self/comm', name.slice(0, 15));
  } catch {
    /* best effort */
  }
}

/**
 * What /proc/self/environ shows, rewritten like the command line: for a spare daemon
 * (spare.ts) that took on its `start`'s environment, so that it reads exactly like a
 * daemon spawned with it. Only safe once no entry of glibc's environ points into the
 * original block (every variable was unset and set again: setenv copies). False if the
 * area is too small (the spare boots with a padding variable to make room) or not writable.
 */
export function setEnvironArea(env: string[]): boolean {
  const text = Buffer.from(env.map((e) => `${e}\0`).join(''));
  try {
    const area = argArea(50);
    if (!area || text.length > area.end - area.start || env.some((e) => e.includes('\0'))) return false;
    const buf = Buffer.alloc(area.end - area.start);
    text.copy(buf);
    const fd = openSync('/proc/self/mem', 'r+');
    try {
      writeSync(fd, buf, 0, buf.length, area.start);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch {
    return false;
  }
}
