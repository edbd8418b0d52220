/**
 * EventForwarder: the one ordered path from the core's events to containerd's ttrpc
 * Events.Forward. One bounded queue, one event in flight, a deadline on each publish,
 * reconnect and retry with back-off on failure — in order: an event is never overtaken
 * by a later one (the Go shim re-queues failed events, which can reorder them).
 *
 * While containerd is down (restart), events wait in the queue. When the queue is full
 * the oldest non-exit event is dropped first: an exit is what containerd can least
 * afford to miss.
 */
import type { EventSink, TaskEvent } from '../core/events.js';
import type { Logger } from '../core/task-core.js';

export interface ForwardTransport {
  /** send one encoded ForwardRequest; rejects on failure or deadline */
  forward(payload: Uint8Array, timeoutMs: number): Promise<void>;
  /** drop the connection so the next forward reconnects */
  reset(): void;
  close(): void;
}

export interface EventForwarderOptions {
  encode(event: TaskEvent, at: Date): Uint8Array;
  transport: ForwardTransport;
  log: Logger;
  maxQueue?: number;
  publishTimeoutMs?: number;
  /** back-off between retries of the same event: min, max */
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface Queued {
  event: TaskEvent;
  payload: Uint8Array;
}

export class EventForwarder implements EventSink {
  private readonly queue: Queued[] = [];
  private running = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private wakeRetry: (() => void) | undefined;
  private readonly maxQueue: number;
  private readonly timeoutMs: number;
  private readonly retryMin: number;
  private readonly retryMax: number;
  dropped = 0;

  constructor(private readonly opts: EventForwarderOptions) {
    this.maxQueue = opts.maxQueue ?? 4096;
    this.timeoutMs = opts.publishTimeoutMs ?? 5000;
    this.retryMin = opts.retryMinMs ?? 100;
    this.retryMax = opts.retryMaxMs ?? 2000;
  }

  publish(event: TaskEvent): void {
    if (this.closed) return;
    let payload: Uint8Array;
    try {
      payload = this.opts.encode(event, new Date());
    } catch (err) {
      this.opts.log.error({ err, topic: event.topic }, 'cannot encode event');
      return;
    }
    if (this.queue.length >= this.maxQueue) this.dropOne();
    this.queue.push({ event, payload });
    if (!this.running) void this.pump();
  }

  get pending(): number {
    return this.queue.length;
  }

  private dropOne(): void {
    const i = this.queue.findIndex((q, idx) => idx > 0 && q.event.topic !== '/tasks/exit');
    const [gone] = this.queue.splice(i > 0 ? i : 1, 1);
    this.dropped++;
    this.opts.log.error({ topic: gone?.event.topic }, 'event queue full, dropping an event');
  }

  private async pump(): Promise<void> {
    this.running = true;
    let backoff = this.retryMin;
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      try {
        await this.opts.transport.forward(head.payload, this.timeoutMs);
        this.queue.shift();
        backoff = this.retryMin;
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message, topic: head.event.topic }, 'forward failed, retrying');
        this.opts.transport.reset();
        await new Promise<void>((resolve) => {
          this.wakeRetry = resolve;
          this.retryTimer = setTimeout(resolve, backoff);
        });
        this.wakeRetry = undefined;
        backoff = Math.min(backoff * 2, this.retryMax);
      }
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** wait until the queue is empty or the deadline passes; true when everything went out */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.queue.length === 0) return true;
    // retry now rather than after the back-off
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done && this.queue.length === 0;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.wakeRetry?.();
    this.opts.transport.close();
  }
}
