import { describe, it, expect } from 'vitest';
import { EventForwarder, type ForwardTransport } from '../../src/shim/event-forwarder.js';
import type { TaskEvent } from '../../src/core/events.js';

const log = { debug() {}, info() {}, warn() {}, error() {} };
const ev = (i: number): TaskEvent => ({ topic: '/tasks/start', containerId: `c${i}`, pid: i });

class FlakyTransport implements ForwardTransport {
  delivered: string[] = [];
  failuresLeft = 0;
  resets = 0;
  async forward(payload: Uint8Array): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new Error('containerd is down');
    }
    this.delivered.push(Buffer.from(payload).toString());
  }
  reset(): void {
    this.resets++;
  }
  close(): void {}
}

describe('EventForwarder', () => {
  it('delivers in order across failures, reconnecting between retries', async () => {
    const t = new FlakyTransport();
    const f = new EventForwarder({ encode: (e) => Buffer.from((e as { containerId: string }).containerId), transport: t, log, retryMinMs: 1, retryMaxMs: 4 });
    t.failuresLeft = 3;
    for (let i = 0; i < 20; i++) f.publish(ev(i));
    expect(await f.flush(5000)).toBe(true);
    expect(t.delivered).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`));
    expect(t.resets).toBe(3);
  });

  it('bounds the queue and prefers dropping non-exit events', async () => {
    const t = new FlakyTransport();
    t.failuresLeft = 1_000_000;
    const f = new EventForwarder({ encode: (e) => Buffer.from(e.topic + (e as { containerId: string }).containerId), transport: t, log, maxQueue: 3, retryMinMs: 1000 });
    f.publish(ev(0));
    f.publish({ topic: '/tasks/exit', containerId: 'x', id: 'x', pid: 1, exitStatus: 0, exitedAt: new Date() });
    f.publish(ev(2));
    f.publish(ev(3));
    expect(f.pending).toBe(3);
    expect(f.dropped).toBe(1);
    t.failuresLeft = 0;
    expect(await f.flush(2000)).toBe(true);
    expect(t.delivered).toEqual(['/tasks/startc0', '/tasks/exitx', '/tasks/startc3']);
    f.close();
  });

  it('flush gives up at its deadline while containerd stays away', async () => {
    const t = new FlakyTransport();
    t.failuresLeft = 1_000_000;
    const f = new EventForwarder({ encode: () => Buffer.from('x'), transport: t, log, retryMinMs: 5 });
    f.publish(ev(1));
    const started = Date.now();
    expect(await f.flush(100)).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
    f.close();
  });
});
