/**
 * Turns the three stdio strings containerd sends (Create / Exec) into a plan. As in the Go
 * shim, the stdout string decides the scheme for all three; stdin and stderr are plain paths
 * (or `fifo://` paths) under the fifo scheme and ignored under the others.
 */
import { invalidArgument, unimplemented } from '../core/errors.js';

export interface StdioUris {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export type StdioPlan =
  /** all three empty: the process gets /dev/null */
  | { kind: 'null' }
  /** client FIFOs (or existing files); '' = no such stream */
  | { kind: 'fifo'; stdin: string; stdout: string; stderr: string }
  /** stdout and stderr appended to one file; no stdin */
  | { kind: 'file'; path: string }
  /** a logging binary; protocol 2 (`binary-v2`) requires a readiness byte; no stdin */
  | { kind: 'binary'; protocol: 1 | 2; path: string; args: string[] };

/** Go's url.Parse takes whatever precedes the first ':' as scheme when it looks like one. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

export function planStdio(uris: StdioUris): StdioPlan {
  if (!uris.stdin && !uris.stdout && !uris.stderr) return { kind: 'null' };
  const scheme = SCHEME.exec(uris.stdout)?.[1]?.toLowerCase() ?? '';
  switch (scheme) {
    case '':
    case 'fifo':
      return {
        kind: 'fifo',
        stdin: fifoPath(uris.stdin),
        stdout: fifoPath(uris.stdout),
        stderr: fifoPath(uris.stderr),
      };
    case 'file': {
      const url = parseUrl(uris.stdout);
      const path = decodeURIComponent(url.pathname);
      if ((url.host && url.host !== 'localhost') || !path.startsWith('/') || path.endsWith('/')) {
        throw invalidArgument(`stdio file uri ${uris.stdout}: expected file:///absolute/path/of/a/file`);
      }
      return { kind: 'file', path };
    }
    case 'binary':
    case 'binary-v2': {
      const url = parseUrl(uris.stdout);
      const path = decodeURIComponent(url.pathname);
      if (!path) throw invalidArgument(`stdio binary uri ${uris.stdout}: no logger path`);
      const args: string[] = [];
      // each key once, with its first value (Go: range over url.Values, vs[0])
      for (const key of new Set(url.searchParams.keys())) {
        args.push(key, url.searchParams.get(key) ?? '');
      }
      return { kind: 'binary', protocol: scheme === 'binary' ? 1 : 2, path, args };
    }
    default:
      if (scheme.includes('+')) {
        throw unimplemented(
          `streaming stdio (${scheme}://) is not supported by tsshim: configure the runtime with io_type = "fifo"`,
        );
      }
      throw invalidArgument(`unknown stdio scheme ${scheme} in ${uris.stdout}`);
  }
}

function fifoPath(s: string): string {
  return s.toLowerCase().startsWith('fifo://') ? s.slice('fifo://'.length) : s;
}

function parseUrl(s: string): URL {
  try {
    return new URL(s);
  } catch (err) {
    throw invalidArgument(`unable to parse stdio uri ${s}`, err);
  }
}
