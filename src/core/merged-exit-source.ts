/**
 * The reaper's exits plus the exits a backend learns itself (`runsc wait`, a Kata agent's
 * WaitProcess), as one source: the core subscribes to a backend's exits once, before its
 * first spawn, and must not care where an exit came from.
 */
import type { ExitEvent, ExitSource, ExitSubscription } from './backend.js';

export interface ReaperLike extends ExitSource {
  want?(pid: number): void;
}

export class MergedExitSource implements ExitSource {
  private readonly listeners = new Set<(e: ExitEvent) => void>();
  constructor(private readonly reaper: ReaperLike) {}

  subscribe(): ExitSubscription {
    const inner = this.reaper.subscribe();
    const own: Array<(e: ExitEvent) => void> = [];
    return {
      onExit: (cb) => {
        inner.onExit(cb);
        own.push(cb);
        this.listeners.add(cb);
      },
      take: (pid) => inner.take(pid),
      close: () => {
        inner.close();
        for (const cb of own) this.listeners.delete(cb);
      },
    };
  }

  want(pid: number): void {
    this.reaper.want?.(pid);
  }

  /** an exit the backend learned itself */
  emit(e: ExitEvent): void {
    for (const cb of this.listeners) cb(e);
  }
}
