/**
 * A scriptable in-memory backend for unit tests of the task core: pids are invented,
 * exits are injected by the test, calls are recorded.
 */
import type {
  Backend,
  BackendContainer,
  CgroupMetrics,
  CreateResult,
  ExitEvent,
  ExitSource,
  ExitSubscription,
} from '../../src/core/backend.js';
import { notFound } from '../../src/core/errors.js';

export class StubExits implements ExitSource {
  private subs = new Set<(e: ExitEvent) => void>();
  subscribe(): ExitSubscription {
    let cb: ((e: ExitEvent) => void) | undefined;
    const seen = new Map<number, ExitEvent>();
    const fn = (e: ExitEvent) => {
      seen.set(e.pid, e);
      cb?.(e);
    };
    this.subs.add(fn);
    return {
      onExit: (c) => (cb = c),
      take: (pid) => seen.get(pid),
      close: () => this.subs.delete(fn),
    };
  }
  emit(pid: number, status: number): void {
    const e = { pid, status, at: new Date() };
    for (const s of this.subs) s(e);
  }
}

export class StubBackend implements Backend {
  readonly name = 'stub';
  readonly capabilities = { checkpoint: false, pause: true, update: true, terminal: true };
  readonly exits = new StubExits();
  readonly calls: string[] = [];
  nextPid = 1000;
  /** hooks a test can set to inject behaviour at a given call */
  onCreate?: (pid: number) => void | Promise<void>;
  onStart?: (c: BackendContainer) => void | Promise<void>;
  onExec?: (pid: number) => void | Promise<void>;
  failCreate?: Error;
  failExec?: Error;
  running = new Set<string>();

  async create(input: { id: string; bundle: string }): Promise<{ container: BackendContainer } & CreateResult> {
    this.calls.push(`create ${input.id}`);
    if (this.failCreate) throw this.failCreate;
    const pid = this.nextPid++;
    await this.onCreate?.(pid);
    this.running.add(input.id);
    return { container: { id: input.id, bundle: input.bundle }, pid };
  }
  async start(c: BackendContainer): Promise<void> {
    this.calls.push(`start ${c.id}`);
    await this.onStart?.(c);
  }
  /** the process spec of every exec, as the backend received it */
  readonly execSpecs: Array<Record<string, unknown>> = [];
  async exec(c: BackendContainer, input: { execId: string; spec: Record<string, unknown> }): Promise<CreateResult> {
    this.calls.push(`exec ${c.id} ${input.execId}`);
    this.execSpecs.push(input.spec);
    if (this.failExec) throw this.failExec;
    const pid = this.nextPid++;
    await this.onExec?.(pid);
    return { pid };
  }
  async kill(c: BackendContainer, signal: number, all: boolean): Promise<void> {
    this.calls.push(`kill ${c.id} ${signal}${all ? ' all' : ''}`);
  }
  async killProcess(c: BackendContainer, pid: number, signal: number): Promise<void> {
    this.calls.push(`killProcess ${c.id} ${pid} ${signal}`);
  }
  async pause(c: BackendContainer): Promise<void> {
    this.calls.push(`pause ${c.id}`);
  }
  async resume(c: BackendContainer): Promise<void> {
    this.calls.push(`resume ${c.id}`);
  }
  async update(c: BackendContainer): Promise<void> {
    this.calls.push(`update ${c.id}`);
  }
  async pids(): Promise<number[]> {
    return [];
  }
  async stats(): Promise<CgroupMetrics> {
    return { version: 2, data: {} };
  }
  async checkpoint(): Promise<void> {
    throw new Error('not reached');
  }
  async delete(c: BackendContainer): Promise<void> {
    this.calls.push(`delete ${c.id}`);
    if (!this.running.delete(c.id)) throw notFound('container does not exist');
  }
  async cleanupAfterCrash(): Promise<void> {
    this.calls.push('cleanupAfterCrash');
  }
}
