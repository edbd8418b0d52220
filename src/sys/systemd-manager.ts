/**
 * systemd's manager over D-Bus (org.freedesktop.systemd1.Manager), for the systemd cgroup
 * driver: transient units made, changed and stopped as runc and crun do it, each call and
 * each job with a deadline. The wire protocol is dbus-native's; this module only knows
 * which methods systemd has and how its jobs finish.
 *
 * Where systemd is reached: the system bus, as runc and crun reach it (every systemd node runs
 * dbus-daemon); only without one, as root, systemd's private socket (/run/systemd/private, a
 * direct peer-to-peer connection, what systemctl uses). dbus-native's direct connections
 * answer only the first connection of a process here (a second one's calls get no reply,
 * seen against systemd 252), so the private socket is the fallback, not the default. A
 * connection is opened per operation and closed after it: the shim otherwise holds nothing
 * between a container's create and its delete.
 *
 * Jobs: StartTransientUnit and StopUnit return a job object path; the result comes later as
 * the JobRemoved signal, which systemd sends only to clients that called Subscribe. Signals
 * are collected from the moment of Subscribe, so a job that finishes before its call's
 * reply is read is not missed.
 */
import { existsSync } from 'node:fs';
import { createClient, Variant, type MessageBus, type Message } from 'dbus-native';
import { ShimError, deadlineExceeded } from '../core/errors.js';

const DESTINATION = 'org.freedesktop.systemd1';
const PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const PRIVATE_SOCKET = '/run/systemd/private';
const SYSTEM_BUS = '/run/dbus/system_bus_socket';

/** A unit property as systemd's a(sv) wants it: name, D-Bus signature, value. */
export interface UnitProperty {
  name: string;
  signature: string;
  value: unknown;
}

export interface SystemdManagerOptions {
  /** deadline for connecting plus the whole operation's calls and jobs (ms) */
  timeoutMs?: number;
  /** a D-Bus address to use instead of the private socket or the system bus (tests) */
  address?: string;
}

interface JobResult {
  unit: string;
  result: string;
}

export class SystemdManager {
  private readonly jobs = new Map<string, JobResult>();
  private readonly jobWaiters = new Map<string, (r: JobResult) => void>();

  private constructor(
    private readonly bus: MessageBus,
    private readonly deadline: number,
  ) {
    bus.connection.on('message', (msg: Message) => {
      if (msg.type !== 4 || msg.interface !== MANAGER || msg.member !== 'JobRemoved') return;
      // JobRemoved(u id, o job, s unit, s result)
      const [, job, unit, result] = (msg.body ?? []) as [number, string, string, string];
      const r = { unit, result };
      const waiter = this.jobWaiters.get(job);
      if (waiter) waiter(r);
      else this.jobs.set(job, r);
    });
  }

  /** connects and subscribes; every later call shares the one deadline */
  static async connect(o: SystemdManagerOptions = {}): Promise<SystemdManager> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    const systemBus = process.env.DBUS_SYSTEM_BUS_ADDRESS?.replace(/^unix:path=/, '') ?? SYSTEM_BUS;
    const direct = o.address === undefined && !existsSync(systemBus) && process.getuid?.() === 0 && existsSync(PRIVATE_SOCKET);
    const address = o.address ?? (direct ? `unix:path=${PRIVATE_SOCKET}` : `unix:path=${systemBus}`);
    let bus: MessageBus;
    try {
      bus = createClient({ busAddress: address, direct });
    } catch (err) {
      throw new ShimError('FailedPrecondition', `systemd cgroup driver: cannot reach systemd over D-Bus at ${address}: ${(err as Error).message}`, { cause: err });
    }
    const manager = new SystemdManager(bus, deadline);
    const failed = new Promise<never>((_, reject) => {
      bus.connection.once('error', (err: Error) =>
        reject(new ShimError('FailedPrecondition', `systemd cgroup driver: cannot reach systemd over D-Bus at ${address}: ${err.message}`, { cause: err })),
      );
    });
    failed.catch(() => undefined);
    try {
      if (!direct) await Promise.race([manager.bus.addMatch(`type='signal',sender='${DESTINATION}',interface='${MANAGER}',member='JobRemoved'`), failed]);
      await Promise.race([manager.call('Subscribe', '', []), failed]);
    } catch (err) {
      manager.close();
      throw err;
    }
    return manager;
  }

  private remaining(what: string): number {
    const left = this.deadline - Date.now();
    if (left <= 0) throw deadlineExceeded(`systemd: ${what}: no time left before the deadline`);
    return left;
  }

  private async call<T = unknown>(member: string, signature: string, body: unknown[]): Promise<T> {
    const timeout = this.remaining(member);
    try {
      return (await this.bus.invoke<T>({ destination: DESTINATION, path: PATH, interface: MANAGER, member, signature, body }, { timeout })) as T;
    } catch (err) {
      const e = err as Error & { code?: string; dbusName?: string };
      if (e.code === 'ETIMEDOUT') throw new ShimError('DeadlineExceeded', `systemd ${member}: no answer within ${timeout} ms`, { cause: err });
      throw new SystemdError(member, e.dbusName, e.message);
    }
  }

  private waitJob(job: string, what: string): Promise<JobResult> {
    const done = this.jobs.get(job);
    if (done) {
      this.jobs.delete(job);
      return Promise.resolve(done);
    }
    const timeout = this.remaining(what);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.jobWaiters.delete(job);
        reject(deadlineExceeded(`systemd: ${what}: job ${job} did not finish within ${timeout} ms`));
      }, timeout);
      this.jobWaiters.set(job, (r) => {
        clearTimeout(timer);
        this.jobWaiters.delete(job);
        resolve(r);
      });
    });
  }

  private static encode(props: UnitProperty[]): unknown[] {
    return props.map((p) => [p.name, new Variant(p.signature, p.value)]);
  }

  /** StartTransientUnit in mode "fail", and waits for its job: "done" or an error naming the result */
  async startTransientUnit(name: string, props: UnitProperty[]): Promise<void> {
    const job = await this.call<string>('StartTransientUnit', 'ssa(sv)a(sa(sv))', [name, 'fail', SystemdManager.encode(props), []]);
    const r = await this.waitJob(job, `start ${name}`);
    if (r.result !== 'done') throw new SystemdError('StartTransientUnit', undefined, `unit ${name}: job finished with result "${r.result}"`);
  }

  /** StopUnit and wait; a unit that is not loaded (gone already) is success */
  async stopUnit(name: string): Promise<void> {
    let job: string;
    try {
      job = await this.call<string>('StopUnit', 'ss', [name, 'replace']);
    } catch (err) {
      if (err instanceof SystemdError && err.dbusName === 'org.freedesktop.systemd1.NoSuchUnit') return;
      throw err;
    }
    const r = await this.waitJob(job, `stop ${name}`);
    if (r.result !== 'done' && r.result !== 'skipped') throw new SystemdError('StopUnit', undefined, `unit ${name}: job finished with result "${r.result}"`);
  }

  /** a failed unit stays loaded until reset: forget it so its name can be used again */
  async resetFailedUnit(name: string): Promise<void> {
    try {
      await this.call('ResetFailedUnit', 's', [name]);
    } catch (err) {
      if (err instanceof SystemdError && (err.dbusName === 'org.freedesktop.systemd1.NoSuchUnit' || err.dbusName === 'org.freedesktop.systemd1.LoadFailed')) return;
      throw err;
    }
  }

  /** SetUnitProperties(runtime): the values systemd writes again on a reload */
  async setUnitProperties(name: string, props: UnitProperty[]): Promise<void> {
    if (props.length === 0) return;
    await this.call('SetUnitProperties', 'sba(sv)', [name, true, SystemdManager.encode(props)]);
  }

  close(): void {
    for (const waiter of this.jobWaiters.values()) waiter({ unit: '', result: 'canceled' });
    try {
      this.bus.connection.end();
    } catch {
      // closed already
    }
  }
}

/** A D-Bus error answer from systemd: the method and systemd's error name kept. */
export class SystemdError extends ShimError {
  constructor(
    readonly method: string,
    readonly dbusName: string | undefined,
    detail: string,
  ) {
    super(dbusName === 'org.freedesktop.systemd1.UnitExists' ? 'AlreadyExists' : 'Unknown', `systemd ${method}: ${detail}`);
    this.name = 'SystemdError';
  }
}
