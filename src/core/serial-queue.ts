/**
 * Runs async jobs one at a time, in submission order. Used per container so that
 * lifecycle verbs (Create, Start, Delete, Exec, Pause, …) never interleave, while
 * read-only verbs (State, Wait, Pids, Stats) and Kill stay free to run.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(job: () => Promise<T>): Promise<T> {
    const result = this.tail.then(job, job);
    // keep the chain alive whatever the job's outcome
    this.tail = result.catch(() => undefined);
    return result;
  }
}
