/**
 * A fake containerd for component tests: a ttrpc Events.Forward endpoint that records
 * every envelope, plus a helper to run the real shim binary the way containerd does.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { execa } from 'execa';
import { TtrpcServer } from '../../src/ttrpc/server.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { ForwardRequest } from '../../src/proto/gen/containerd/services/events/ttrpc/v1/events.js';
import { EVENTS_SERVICE, decodeEventAny, type DecodedEvent } from '../../src/proto/typeurls.js';

export const SHIM_BIN = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../bin/containerd-shim-tsshim-v2');

export interface RecordedEvent {
  namespace: string;
  topic: string;
  event: DecodedEvent['event'] | undefined;
}

export class FakeContainerd {
  readonly events: RecordedEvent[] = [];
  readonly ttrpcPath: string;
  /** what the shim gets as -address (only hashed into the socket name) */
  readonly grpcAddress: string;
  private readonly server = new TtrpcServer();
  private readonly net = net.createServer();
  private waiters: Array<() => void> = [];
  /** while true, Forward fails (containerd "down") */
  refuse = false;
  /** environment every shim run gets (a run's own env wins) */
  env: Record<string, string> = {};

  constructor(dir: string) {
    this.ttrpcPath = path.join(dir, 'c.sock.ttrpc');
    this.grpcAddress = path.join(dir, 'c.sock');
    this.server.register(EVENTS_SERVICE, {
      Forward: async (payload) => {
        if (this.refuse) throw new Error('containerd is restarting');
        const req = ForwardRequest.decode(payload);
        const env = req.envelope!;
        const decoded = env.event ? decodeEventAny(env.event) : undefined;
        this.events.push({ namespace: env.namespace, topic: env.topic, event: decoded?.event });
        for (const w of this.waiters.splice(0)) w();
        return new Uint8Array(0);
      },
    });
    this.server.listen(this.net);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.net.listen(this.ttrpcPath, resolve));
  }

  async stop(): Promise<void> {
    await this.server.close();
    await new Promise<void>((r) => this.net.close(() => r()));
  }

  topics(): string[] {
    return this.events.map((e) => {
      const ev = e.event as { id?: string; execId?: string } | undefined;
      if (e.topic === '/tasks/exit') return `${e.topic}:${ev?.id}`;
      return e.topic;
    });
  }

  /** wait until an event matching pred has been recorded */
  async waitFor(pred: (e: RecordedEvent) => boolean, timeoutMs = 10_000): Promise<RecordedEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`event not seen; have ${this.topics().join(', ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** run `containerd-shim-tsshim-v2 … <action>` in a bundle, like containerd does */
  async runShim(action: 'start' | 'delete', o: { namespace: string; id: string; bundle: string; input?: Uint8Array; env?: Record<string, string> }) {
    return execa(
      SHIM_BIN,
      ['-namespace', o.namespace, '-address', this.grpcAddress, '-publish-binary', '/bin/false', '-id', o.id, ...(action === 'delete' ? ['-bundle', o.bundle] : []), action],
      {
        cwd: o.bundle,
        env: { TTRPC_ADDRESS: this.ttrpcPath, ...this.env, ...o.env },
        input: o.input ? Buffer.from(o.input) : '',
        encoding: action === 'delete' ? 'buffer' : 'utf8',
        reject: false,
        timeout: 20_000,
      },
    );
  }
}

export async function connectShim(address: string): Promise<TtrpcClient> {
  return TtrpcClient.connect(address.replace(/^unix:\/\//, ''), { timeoutMs: 5000 });
}
