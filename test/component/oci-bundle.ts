/**
 * Builds an OCI bundle (busybox rootfs + config.json) in a temp dir for tests that run
 * a runtime without containerd. busybox-static comes from Debian.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

const BUSYBOX = '/bin/busybox';

let rootfsTemplate: string | undefined;

/** one busybox rootfs per test process, copied (hard links are fine: read-only use) */
function template(): string {
  if (rootfsTemplate && fs.existsSync(rootfsTemplate)) return rootfsTemplate;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-rootfs-'));
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'etc', 'root']) fs.mkdirSync(path.join(dir, d));
  fs.copyFileSync(BUSYBOX, path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const a of applets) {
    if (a === 'busybox') continue;
    try {
      fs.symlinkSync('busybox', path.join(dir, 'bin', a));
    } catch {
      /* duplicate */
    }
  }
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\nnobody:x:65534:\n');
  rootfsTemplate = dir;
  return dir;
}

export interface BundleOptions {
  args: string[];
  terminal?: boolean;
  annotations?: Record<string, string>;
  /** extra linux.resources */
  resources?: Record<string, unknown>;
  cgroupsPath?: string;
}

export function makeBundle(parent: string, name: string, o: BundleOptions): string {
  const bundle = path.join(parent, name);
  fs.mkdirSync(bundle, { recursive: true });
  execFileSync('cp', ['-a', template(), path.join(bundle, 'rootfs')]);
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.args = o.args;
  spec.process.terminal = !!o.terminal;
  spec.root = { path: 'rootfs', readonly: false };
  if (o.annotations) spec.annotations = o.annotations;
  if (o.resources) spec.linux.resources = { ...(spec.linux.resources ?? {}), ...o.resources };
  if (o.cgroupsPath) spec.linux.cgroupsPath = o.cgroupsPath;
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  return bundle;
}

export function removeRootfsTemplate(): void {
  if (rootfsTemplate) fs.rmSync(rootfsTemplate, { recursive: true, force: true });
  rootfsTemplate = undefined;
}
