/**
 * Events.Forward over ttrpc to containerd ($TTRPC_ADDRESS). Connects lazily, reconnects
 * after any failure (containerd restarts keep the same path).
 */
import { TtrpcClient } from '../ttrpc/client.js';
import { EVENTS_FORWARD_METHOD, EVENTS_SERVICE } from '../proto/typeurls.js';
import type { ForwardTransport } from './event-forwarder.js';
import { stripUnix } from './address.js';

export class TtrpcForwardTransport implements ForwardTransport {
  private client: TtrpcClient | undefined;
  private connecting: Promise<TtrpcClient> | undefined;

  constructor(
    private readonly address: string,
    private readonly namespace: string,
  ) {}

  private async connection(timeoutMs: number): Promise<TtrpcClient> {
    if (this.client && !this.client.closed) return this.client;
    if (!this.connecting) {
      this.connecting = TtrpcClient.connect(stripUnix(this.address), { timeoutMs }).finally(() => {
        this.connecting = undefined;
      });
    }
    this.client = await this.connecting;
    return this.client;
  }

  async forward(payload: Uint8Array, timeoutMs: number): Promise<void> {
    if (!this.address) throw new Error('TTRPC_ADDRESS is not set: cannot publish events');
    const client = await this.connection(timeoutMs);
    await client.call(EVENTS_SERVICE, EVENTS_FORWARD_METHOD, payload, {
      timeoutMs,
      metadata: { 'containerd-namespace-ttrpc': this.namespace },
    });
  }

  reset(): void {
    this.client?.close();
    this.client = undefined;
  }

  close(): void {
    this.reset();
  }
}
