/**
 * Type URLs, service names and event topics as containerd puts them on the wire,
 * plus the few helpers that pack and unpack google.protobuf.Any.
 *
 * containerd uses the *bare* full message name as type URL (no "type.googleapis.com/"
 * prefix): 1.6 cannot decode a prefixed URL, 2.x accepts both. So we always emit bare
 * names and accept both forms when reading (protocol doc §1.9).
 */
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Any } from './gen/google/protobuf/any.js';
import type { Timestamp } from './gen/google/protobuf/timestamp.js';
import { Envelope } from './gen/containerd/services/events/ttrpc/v1/events.js';
import {
  TaskCheckpointed,
  TaskCreate,
  TaskDelete,
  TaskExecAdded,
  TaskExecStarted,
  TaskExit,
  TaskOOM,
  TaskPaused,
  TaskResumed,
  TaskStart,
} from './gen/containerd/events/task.js';
import { timestampNow } from './timestamp.js';

export {
  GO_ZERO_TIME_SECONDS,
  zeroTimestamp,
  isZeroTimestamp,
  timestampFromDate,
  timestampFromEpochNanos,
  timestampNow,
  exitedAtTimestamp,
  dateFromTimestamp,
  exitDateFromTimestamp,
} from './timestamp.js';

/** ttrpc service names. v3 uses the v2 messages unchanged; register one handler set under both. */
export const TASK_SERVICE_V2 = 'containerd.task.v2.Task';
export const TASK_SERVICE_V3 = 'containerd.task.v3.Task';
/** containerd's event sink on $TTRPC_ADDRESS; method `Forward`. */
export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
export const EVENTS_FORWARD_METHOD = 'Forward';

export const TypeUrl = {
  // containerd.events (event payloads)
  TaskCreate: 'containerd.events.TaskCreate',
  TaskStart: 'containerd.events.TaskStart',
  TaskDelete: 'containerd.events.TaskDelete',
  TaskExit: 'containerd.events.TaskExit',
  TaskOOM: 'containerd.events.TaskOOM',
  TaskExecAdded: 'containerd.events.TaskExecAdded',
  TaskExecStarted: 'containerd.events.TaskExecStarted',
  TaskPaused: 'containerd.events.TaskPaused',
  TaskResumed: 'containerd.events.TaskResumed',
  TaskCheckpointed: 'containerd.events.TaskCheckpointed',
  // runtime / task options
  RuncOptions: 'containerd.runc.v1.Options',
  RuncCheckpointOptions: 'containerd.runc.v1.CheckpointOptions',
  RuncProcessDetails: 'containerd.runc.v1.ProcessDetails',
  LinuxRuncCreateOptions: 'containerd.linux.runc.CreateOptions',
  RuntimeOptions: 'runtimeoptions.v1.Options',
  // Stats payloads
  CgroupsV1Metrics: 'io.containerd.cgroups.v1.Metrics',
  CgroupsV2Metrics: 'io.containerd.cgroups.v2.Metrics',
  // OCI types travel as JSON bytes under these URLs (never prefix-stripped).
  OciSpec: 'types.containerd.io/opencontainers/runtime-spec/1/Spec',
  OciProcess: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  OciLinuxResources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
  OciWindowsResources: 'types.containerd.io/opencontainers/runtime-spec/1/WindowsResources',
  OciFeatures: 'types.containerd.io/opencontainers/runtime-spec/1/features/Features',
} as const;
export type KnownTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

export const Topic = {
  TaskCreate: '/tasks/create',
  TaskStart: '/tasks/start',
  TaskDelete: '/tasks/delete',
  TaskExit: '/tasks/exit',
  TaskOOM: '/tasks/oom',
  TaskExecAdded: '/tasks/exec-added',
  TaskExecStarted: '/tasks/exec-started',
  TaskPaused: '/tasks/paused',
  TaskResumed: '/tasks/resumed',
  TaskCheckpointed: '/tasks/checkpointed',
} as const;
export type EventTopic = (typeof Topic)[keyof typeof Topic];

/** The message carried by each topic. */
export interface TopicEvents {
  '/tasks/create': TaskCreate;
  '/tasks/start': TaskStart;
  '/tasks/delete': TaskDelete;
  '/tasks/exit': TaskExit;
  '/tasks/oom': TaskOOM;
  '/tasks/exec-added': TaskExecAdded;
  '/tasks/exec-started': TaskExecStarted;
  '/tasks/paused': TaskPaused;
  '/tasks/resumed': TaskResumed;
  '/tasks/checkpointed': TaskCheckpointed;
}

/** The subset of ts-proto's generated message functions the helpers need. */
export interface MessageCodec<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
  decode(input: Uint8Array): T;
  /** Fills every absent (or undefined) field with its proto3 default. */
  fromPartial(object: Partial<T>): T;
}

interface TopicBinding<T> {
  typeUrl: string;
  codec: MessageCodec<T>;
}

const TOPIC_BINDINGS: { [K in EventTopic]: TopicBinding<TopicEvents[K]> } = {
  '/tasks/create': { typeUrl: TypeUrl.TaskCreate, codec: TaskCreate },
  '/tasks/start': { typeUrl: TypeUrl.TaskStart, codec: TaskStart },
  '/tasks/delete': { typeUrl: TypeUrl.TaskDelete, codec: TaskDelete },
  '/tasks/exit': { typeUrl: TypeUrl.TaskExit, codec: TaskExit },
  '/tasks/oom': { typeUrl: TypeUrl.TaskOOM, codec: TaskOOM },
  '/tasks/exec-added': { typeUrl: TypeUrl.TaskExecAdded, codec: TaskExecAdded },
  '/tasks/exec-started': { typeUrl: TypeUrl.TaskExecStarted, codec: TaskExecStarted },
  '/tasks/paused': { typeUrl: TypeUrl.TaskPaused, codec: TaskPaused },
  '/tasks/resumed': { typeUrl: TypeUrl.TaskResumed, codec: TaskResumed },
  '/tasks/checkpointed': { typeUrl: TypeUrl.TaskCheckpointed, codec: TaskCheckpointed },
};

const TOPIC_BY_TYPE_URL: ReadonlyMap<string, EventTopic> = new Map(
  (Object.keys(TOPIC_BINDINGS) as EventTopic[]).map((topic) => [TOPIC_BINDINGS[topic].typeUrl, topic]),
);

const OCI_JSON_PREFIX = 'types.containerd.io/';

/**
 * The name we compare type URLs by. Protobuf URLs are reduced to the full message
 * name after the last "/" (so "type.googleapis.com/containerd.runc.v1.Options" and
 * "containerd.runc.v1.Options" are equal). containerd's OCI JSON URLs contain slashes
 * that are part of the name, so they are kept whole.
 */
export function normalizeTypeUrl(typeUrl: string): string {
  if (typeUrl.startsWith(OCI_JSON_PREFIX)) return typeUrl;
  const slash = typeUrl.lastIndexOf('/');
  return slash < 0 ? typeUrl : typeUrl.slice(slash + 1);
}

/** True if `typeUrl` names `expected`, in bare or prefixed form. */
export function typeUrlMatches(typeUrl: string, expected: string): boolean {
  return typeUrl === expected || normalizeTypeUrl(typeUrl) === normalizeTypeUrl(expected);
}

/** Wraps already-encoded bytes. `typeUrl` should be a bare name (see TypeUrl). */
export function packAny(typeUrl: string, value: Uint8Array): Any {
  const buf = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return { typeUrl, value: buf };
}

/** Encodes a message and wraps it. */
export function packMessage<T>(typeUrl: string, codec: MessageCodec<T>, message: T): Any {
  return packAny(typeUrl, codec.encode(message).finish());
}

/** Wraps a JSON document (OCI types, runtime features). */
export function packJson(typeUrl: string, value: unknown): Any {
  return packAny(typeUrl, Buffer.from(JSON.stringify(value), 'utf8'));
}

/**
 * Decodes `any` if it carries `typeUrl` (bare or prefixed); undefined when `any` is
 * absent or of another type. A corrupt payload throws the decoder's error.
 */
export function unpackAny<T>(any: Any | undefined, typeUrl: string, codec: MessageCodec<T>): T | undefined {
  if (any === undefined || !typeUrlMatches(any.typeUrl, typeUrl)) return undefined;
  return codec.decode(any.value);
}

/** Parses the JSON payload of `any` if it carries `typeUrl`; undefined otherwise. */
export function unpackJson(any: Any | undefined, typeUrl: string): unknown {
  if (any === undefined || !typeUrlMatches(any.typeUrl, typeUrl)) return undefined;
  return JSON.parse(Buffer.from(any.value).toString('utf8')) as unknown;
}

/**
 * Builds the Any for an event: the type URL that belongs to `topic` and the encoded
 * message. Fields left out of `event` take their proto3 defaults.
 */
export function eventAny<K extends EventTopic>(topic: K, event: Partial<TopicEvents[K]>): Any {
  const binding = TOPIC_BINDINGS[topic] as TopicBinding<TopicEvents[K]>;
  return packAny(binding.typeUrl, binding.codec.encode(binding.codec.fromPartial(event)).finish());
}

/** The Envelope a shim forwards (wrap in ForwardRequest{envelope}). */
export function eventEnvelope<K extends EventTopic>(
  namespace: string,
  topic: K,
  event: Partial<TopicEvents[K]>,
  timestamp: Timestamp = timestampNow(),
): Envelope {
  return { timestamp, namespace, topic, event: eventAny(topic, event) };
}

export type DecodedEvent = { [K in EventTopic]: { topic: K; event: TopicEvents[K] } }[EventTopic];

/**
 * Decodes an event Any by its type URL (for test doubles of containerd and for logs).
 * Undefined for type URLs that are not task events.
 */
export function decodeEventAny(any: Any): DecodedEvent | undefined {
  const topic = TOPIC_BY_TYPE_URL.get(normalizeTypeUrl(any.typeUrl));
  if (topic === undefined) return undefined;
  const binding = TOPIC_BINDINGS[topic] as TopicBinding<unknown>;
  return { topic, event: binding.codec.decode(any.value) } as DecodedEvent;
}

/** The topic that belongs to an event type URL, e.g. "containerd.events.TaskExit" → "/tasks/exit". */
export function topicForTypeUrl(typeUrl: string): EventTopic | undefined {
  return TOPIC_BY_TYPE_URL.get(normalizeTypeUrl(typeUrl));
}
