/**
 * ConsoleSocket against the real runc: a busybox bundle with terminal=true, the pty
 * master received over SCM_RIGHTS, its size set, its output read in Node.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadStream } from 'node:tty';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleSocket } from '../../src/sys/console-socket.js';
import { getWinsize, isCloseOnExec, setWinsize } from '../../src/sys/ffi.js';

const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const havePython = (process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, 'python3')));
const haveRunc = BUSYBOX !== undefined && ['/usr/sbin/runc', '/usr/bin/runc'].some((p) => existsSync(p));

let tmp: string;
let stateRoot: string;
let bundle: string;

/** A busybox rootfs; each test writes its own config.json. */
function makeBundle(dir: string): void {
  const bin = join(dir, 'rootfs', 'bin');
  mkdirSync(bin, { recursive: true });
  copyFileSync(BUSYBOX!, join(bin, 'busybox'));
  for (const applet of ['sh', 'stty', 'echo', 'sleep']) symlinkSync('busybox', join(bin, applet));
  for (const d of ['proc', 'dev', 'sys', 'tmp']) mkdirSync(join(dir, 'rootfs', d), { recursive: true });
}

async function writeSpec(dir: string, cgroupName: string, args: string[]): Promise<void> {
  rmSync(join(dir, 'config.json'), { force: true });
  await execa('runc', ['spec', '--bundle', dir], { timeout: 10_000 });
  const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  expect(spec.process.terminal).toBe(true);
  spec.process.args = args;
  // relative: runc puts it under its own cgroup in every hierarchy, and removes it on delete
  spec.linux.cgroupsPath = cgroupName;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
}

function runc(args: string[]) {
  return execa('runc', ['--root', stateRoot, ...args], { timeout: 30_000 });
}

/** Reads the master until `until` matches; EIO (container gone) ends the stream. */
function collect(stream: ReadStream): { text: () => string; waitFor: (re: RegExp) => Promise<string> } {
  let buf = '';
  const waiters: Array<() => void> = [];
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    for (const w of waiters.splice(0)) w();
  });
  stream.on('error', () => undefined); // EIO once the slave side is closed
  return {
    text: () => buf,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timeout waiting for ${re} in ${JSON.stringify(buf)}`)), 15_000);
        const check = (): void => {
          if (re.test(buf)) {
            clearTimeout(t);
            resolve(buf);
          } else waiters.push(check);
        };
        check();
      }),
  };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'tsshim-con-'));
  stateRoot = join(tmp, 'state');
  bundle = join(tmp, 'bundle');
  if (haveRunc) makeBundle(bundle);
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('ConsoleSocket', () => {
  it('creates a short socket path in a private dir and removes it on close', async () => {
    const cs = await ConsoleSocket.create({ parentDir: tmp });
    expect(Buffer.byteLength(cs.path)).toBeLessThan(100);
    expect(existsSync(cs.path)).toBe(true);
    cs.close();
    expect(existsSync(cs.path)).toBe(false);
    cs.close(); // idempotent
  });

  it('rejects with DeadlineExceeded when nothing is sent, ignoring a peer that sends no fd', async () => {
    const cs = await ConsoleSocket.create({ parentDir: tmp });
    const received = cs.receiveMaster(300);
    const peer = connect(cs.path, () => peer.end('no descriptor here'));
    peer.on('error', () => undefined);
    await expect(received).rejects.toMatchObject({ code: 'DeadlineExceeded' });
    cs.close();
  });

  it('fails a pending receive with Canceled on close()', async () => {
    const cs = await ConsoleSocket.create({ parentDir: tmp });
    const received = cs.receiveMaster(10_000);
    cs.close();
    await expect(received).rejects.toMatchObject({ code: 'Canceled' });
  });

  it.runIf(havePython)('takes the first of several fds after leading bytes, closing the others', async () => {
    const cs = await ConsoleSocket.create({ parentDir: tmp });
    const fdsBefore = readdirSync('/proc/self/fd').length;
    try {
      const received = cs.receiveMaster(10_000);
      // bytes without a descriptor first, then one message carrying two descriptors
      const py = [
        'import os, socket, sys',
        's = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])',
        's.sendall(b"lead")',
        'r, w = os.pipe()',
        'os.write(w, b"through the passed fd")',
        'socket.send_fds(s, [b"/dev/pts/x"], [r, w])',
        's.recv(1)',
      ].join('\n');
      const peer = execa('python3', ['-c', py, cs.path], { timeout: 20_000, reject: false });
      const fd = await received;
      const buf = Buffer.alloc(64);
      const n = readSync(fd, buf);
      expect(buf.subarray(0, n).toString()).toBe('through the passed fd');
      closeSync(fd);
      await peer;
      expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore); // the extra fd was closed
    } finally {
      cs.close();
    }
  });

  it('refuses a parent dir that makes the socket path too long', async () => {
    const deep = join(tmp, 'x'.repeat(60), 'y'.repeat(40));
    mkdirSync(deep, { recursive: true });
    await expect(ConsoleSocket.create({ parentDir: deep })).rejects.toMatchObject({ code: 'InvalidArgument' });
  });
});

describe.runIf(haveRunc)('ConsoleSocket with runc', () => {
  it('receives the pty master from runc create, sizes it, and reads the container output', async () => {
    const id = `tsshim-con-${process.pid}`;
    await writeSpec(bundle, id, ['sh', '-c', 'stty size; read line; stty size; echo "got $line"']);
    const cs = await ConsoleSocket.create({ parentDir: tmp });
    let master: number | undefined;
    let stream: ReadStream | undefined;
    try {
      // runc connects and sends the fd before `create` returns: receive afterwards
      await runc(['create', '--bundle', bundle, '--console-socket', cs.path, id]);
      master = await cs.receiveMaster(5_000);
      expect(fstatSync(master).isCharacterDevice()).toBe(true);
      expect(isCloseOnExec(master)).toBe(true);
      setWinsize(master, 30, 100);
      expect(getWinsize(master)).toEqual({ rows: 30, cols: 100 });

      stream = new ReadStream(master);
      const out = collect(stream);
      await runc(['start', id]);
      await out.waitFor(/30 100/);
      setWinsize(master, 40, 120);
      stream.write('hello\n'); // a tty.ReadStream is a duplex net.Socket: it writes too
      await out.waitFor(/got hello/);
      expect(out.text()).toMatch(/40 120/);
    } finally {
      await runc(['delete', '--force', id]).catch(() => undefined);
      stream?.destroy(); // closes the master fd
      cs.close();
    }
  });

  it('receives when the receive starts before runc connects (runc exec --detach)', async () => {
    const id = `tsshim-con2-${process.pid}`;
    await writeSpec(bundle, id, ['sleep', '30']);
    const init = await ConsoleSocket.create({ parentDir: tmp });
    const exec = await ConsoleSocket.create({ parentDir: tmp });
    let initMaster: ReadStream | undefined;
    let execMaster: ReadStream | undefined;
    try {
      const initFd = init.receiveMaster(10_000);
      await runc(['create', '--bundle', bundle, '--console-socket', init.path, id]);
      initMaster = new ReadStream(await initFd);
      initMaster.on('error', () => undefined);
      await runc(['start', id]);

      const execFd = exec.receiveMaster(10_000);
      const process = join(tmp, 'process.json');
      writeFileSync(process, JSON.stringify({ terminal: true, cwd: '/', args: ['sh', '-c', 'stty size; echo exec-ok'], env: ['PATH=/bin'], user: { uid: 0, gid: 0 } }));
      const detached = runc(['exec', '--detach', '--console-socket', exec.path, '--process', process, id]);
      const fd = await execFd;
      setWinsize(fd, 12, 34); // may race the process's first stty; only the output is checked
      execMaster = new ReadStream(fd);
      const out = collect(execMaster);
      await detached;
      await out.waitFor(/exec-ok/);
    } finally {
      await runc(['delete', '--force', id]).catch(() => undefined);
      initMaster?.destroy();
      execMaster?.destroy();
      init.close();
      exec.close();
    }
  });
});
