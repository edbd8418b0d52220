/**
 * Task events as the core produces them: typed, protocol-free. The shim's
 * EventForwarder encodes them into containerd.events.* messages and sends them, in
 * order, to containerd. The core only ever appends to one EventSink, so ordering
 * decisions (start before exit, exec exits before the init exit, OOM before exit) are
 * made in one place: the core's exit pipeline.
 */
import type { Mount } from './backend.js';

export type TaskEvent =
  | {
      topic: '/tasks/create';
      containerId: string;
      bundle: string;
      rootfs: Mount[];
      io: { stdin: string; stdout: string; stderr: string; terminal: boolean };
      checkpoint: string;
      pid: number;
    }
  | { topic: '/tasks/start'; containerId: string; pid: number }
  | { topic: '/tasks/exit'; containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }
  | { topic: '/tasks/delete'; containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }
  | { topic: '/tasks/exec-added'; containerId: string; execId: string }
  | { topic: '/tasks/exec-started'; containerId: string; execId: string; pid: number }
  | { topic: '/tasks/oom'; containerId: string }
  | { topic: '/tasks/paused'; containerId: string }
  | { topic: '/tasks/resumed'; containerId: string }
  | { topic: '/tasks/checkpointed'; containerId: string; checkpoint: string };

export interface EventSink {
  /** never blocks and never throws: delivery is the sink's business */
  publish(event: TaskEvent): void;
}
