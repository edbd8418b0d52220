import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { LogFifoDestination, createLogger } from '../../src/shim/logger.js';

describe('shim logger', () => {
  it('drops lines instead of blocking when containerd stops reading the log FIFO', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-log-'));
    const fifo = path.join(dir, 'log');
    execFileSync('mkfifo', [fifo]);
    // containerd's side: O_RDWR|O_NONBLOCK, and it never reads
    const reader = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    const dest = new LogFifoDestination(fd);
    const line = `${'x'.repeat(200)}\n`;
    const started = Date.now();
    for (let i = 0; i < 2000; i++) dest.write(line); // 400 KB into a 64 KiB pipe
    expect(Date.now() - started).toBeLessThan(2000);
    expect(dest.dropped).toBeGreaterThan(0);
    fs.closeSync(fd);
    fs.closeSync(reader);
    fs.rmSync(dir, { recursive: true });
  });

  it('writes JSON lines into the bundle log FIFO, and logs nowhere without one', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-log-'));
    execFileSync('mkfifo', [path.join(dir, 'log')]);
    const reader = fs.openSync(path.join(dir, 'log'), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const log = createLogger({ bundle: dir, level: 'info', namespace: 'ns1', id: 'c1' });
    log.info({ rpc: 'Create' }, 'hello');
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(reader, buf);
    const entry = JSON.parse(buf.subarray(0, n).toString().trim());
    expect(entry).toMatchObject({ msg: 'hello', rpc: 'Create', namespace: 'ns1', runtime: 'io.containerd.tsshim.v2' });
    fs.closeSync(reader);
    const silent = createLogger({ bundle: path.join(dir, 'nope'), level: 'info', namespace: 'ns1', id: 'c1' });
    expect(() => silent.info('nothing')).not.toThrow();
    fs.rmSync(dir, { recursive: true });
  });

  it("a shim's last lines: wait (bounded) for room in a full pipe, and settle once the reader took everything", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-log-'));
    const fifo = path.join(dir, 'log');
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    const dest = new LogFifoDestination(fd);
    dest.write('first\n');
    // unread bytes: not settled, after the bound
    let t = Date.now();
    expect(dest.settle(100)).toBe(false);
    expect(Date.now() - t).toBeGreaterThanOrEqual(95);
    fs.readSync(reader, Buffer.alloc(64));
    expect(dest.settle(100)).toBe(true);

    // fill the pipe; a final line waits for room until its deadline, then is dropped
    const line = `${'x'.repeat(200)}\n`;
    while (dest.dropped === 0) dest.write(line);
    while (dest.dropped === 1) dest.write('y\n'); // the last page's room too
    dest.final(150);
    t = Date.now();
    dest.write('last\n');
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    expect(dest.dropped).toBe(3);
    // a reader that drains the pipe meanwhile lets the final line through
    const drain = execFileSync('sh', ['-c', `(sleep 0.1; dd if=${fifo} of=/dev/null bs=64k count=1 iflag=nonblock 2>/dev/null) & echo started`], {
      encoding: 'utf8',
    });
    expect(drain.trim()).toBe('started');
    dest.final(5000);
    dest.write('last\n');
    expect(dest.dropped).toBe(3);
    fs.closeSync(fd);
    fs.closeSync(reader);
    fs.rmSync(dir, { recursive: true });
  });
});
