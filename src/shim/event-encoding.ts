/**
 * TaskEvent (core, typed) → ForwardRequest bytes (containerd.services.events.ttrpc.v1).
 */
import type { TaskEvent } from '../core/events.js';
import { ForwardRequest } from '../proto/gen/containerd/services/events/ttrpc/v1/events.js';
import { eventEnvelope, timestampFromDate } from '../proto/typeurls.js';

export function encodeForward(namespace: string, e: TaskEvent, at: Date): Uint8Array {
  const ts = timestampFromDate(at);
  let envelope;
  switch (e.topic) {
    case '/tasks/create':
      envelope = eventEnvelope(namespace, e.topic, {
        containerId: e.containerId,
        bundle: e.bundle,
        rootfs: e.rootfs,
        io: e.io,
        checkpoint: e.checkpoint,
        pid: e.pid,
      }, ts);
      break;
    case '/tasks/start':
      envelope = eventEnvelope(namespace, e.topic, { containerId: e.containerId, pid: e.pid }, ts);
      break;
    case '/tasks/exit':
    case '/tasks/delete':
      envelope = eventEnvelope(namespace, e.topic, {
        containerId: e.containerId,
        id: e.id,
        pid: e.pid,
        exitStatus: e.exitStatus,
        exitedAt: timestampFromDate(e.exitedAt),
      }, ts);
      break;
    case '/tasks/exec-added':
      envelope = eventEnvelope(namespace, e.topic, { containerId: e.containerId, execId: e.execId }, ts);
      break;
    case '/tasks/exec-started':
      envelope = eventEnvelope(namespace, e.topic, { containerId: e.containerId, execId: e.execId, pid: e.pid }, ts);
      break;
    case '/tasks/oom':
    case '/tasks/paused':
    case '/tasks/resumed':
      envelope = eventEnvelope(namespace, e.topic, { containerId: e.containerId }, ts);
      break;
    case '/tasks/checkpointed':
      envelope = eventEnvelope(namespace, e.topic, { containerId: e.containerId, checkpoint: e.checkpoint }, ts);
      break;
  }
  return ForwardRequest.encode({ envelope }).finish();
}
