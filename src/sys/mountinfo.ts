/**
 * Reads /proc/self/mountinfo: is something mounted at a path? Cheap enough for the
 * `delete` action to decide whether it needs to load FFI at all.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** decode the octal escapes (\040 for space, …) the kernel uses in mountinfo */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length > 4) out.push(unescape(f[4]!));
  }
  return out;
}

export function isMountPoint(p: string): boolean {
  const target = resolve(p);
  return mountPoints().includes(target);
}

/** every mount point at or below `p`, deepest first (the order to unmount them in) */
export function mountsUnder(p: string): string[] {
  const target = resolve(p);
  return mountPoints()
    .filter((m) => m === target || m.startsWith(target + '/'))
    .sort((a, b) => b.length - a.length);
}
