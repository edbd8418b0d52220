/**
 * Type URL constants, Any packing, event Any/Envelope building and Timestamp helpers
 * (shim-v2-protocol.md §1.9, §4.1, §4.2).
 */
import { describe, expect, it } from 'vitest';
import * as events from '../../src/proto/gen/containerd/events/task.js';
import * as runcV1 from '../../src/proto/gen/containerd/runc/v1/options.js';
import * as linuxRunc from '../../src/proto/gen/containerd/linux/runc/runc.js';
import * as runtimeOptions from '../../src/proto/gen/runtimeoptions/v1/options.js';
import { ForwardRequest } from '../../src/proto/gen/containerd/services/events/ttrpc/v1/events.js';
import {
  decodeEventAny,
  eventAny,
  eventEnvelope,
  normalizeTypeUrl,
  packAny,
  packJson,
  packMessage,
  Topic,
  topicForTypeUrl,
  TypeUrl,
  typeUrlMatches,
  unpackAny,
  unpackJson,
  type EventTopic,
} from '../../src/proto/typeurls.js';
import {
  dateFromTimestamp,
  exitDateFromTimestamp,
  exitedAtTimestamp,
  GO_ZERO_TIME_SECONDS,
  isZeroTimestamp,
  timestampFromDate,
  timestampFromEpochNanos,
  zeroTimestamp,
} from '../../src/proto/timestamp.js';

describe('type URL constants', () => {
  it('are the bare full names of the generated messages', () => {
    const table: Array<[string, string, string]> = [
      [TypeUrl.RuncOptions, runcV1.protobufPackage, 'Options'],
      [TypeUrl.RuncCheckpointOptions, runcV1.protobufPackage, 'CheckpointOptions'],
      [TypeUrl.RuncProcessDetails, runcV1.protobufPackage, 'ProcessDetails'],
      [TypeUrl.LinuxRuncCreateOptions, linuxRunc.protobufPackage, 'CreateOptions'],
      [TypeUrl.RuntimeOptions, runtimeOptions.protobufPackage, 'Options'],
      [TypeUrl.TaskExit, events.protobufPackage, 'TaskExit'],
      [TypeUrl.TaskOOM, events.protobufPackage, 'TaskOOM'],
    ];
    for (const [url, pkg, name] of table) expect(url).toBe(`${pkg}.${name}`);
    expect(TypeUrl.RuncOptions).toBe('containerd.runc.v1.Options');
    expect(TypeUrl.LinuxRuncCreateOptions).toBe('containerd.linux.runc.CreateOptions');
    expect(TypeUrl.OciLinuxResources).toBe('types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
    for (const url of Object.values(TypeUrl)) expect(url.startsWith('type.googleapis.com/')).toBe(false);
  });

  it('every topic maps to the containerd.events message of the same name', () => {
    const names = Object.keys(Topic) as Array<keyof typeof Topic>;
    expect(names).toHaveLength(10);
    for (const name of names) {
      const any = eventAny(Topic[name], {});
      expect(any.typeUrl).toBe(`containerd.events.${name}`);
      expect(any.typeUrl).toBe(TypeUrl[name]);
      expect(topicForTypeUrl(any.typeUrl)).toBe(Topic[name]);
    }
  });
});

describe('normalizeTypeUrl / typeUrlMatches', () => {
  it('accepts the type.googleapis.com-prefixed form some clients send', () => {
    expect(normalizeTypeUrl('type.googleapis.com/containerd.runc.v1.Options')).toBe('containerd.runc.v1.Options');
    expect(typeUrlMatches('type.googleapis.com/containerd.runc.v1.Options', TypeUrl.RuncOptions)).toBe(true);
    expect(typeUrlMatches('containerd.runc.v1.Options', TypeUrl.RuncOptions)).toBe(true);
    expect(typeUrlMatches('containerd.runc.v1.CheckpointOptions', TypeUrl.RuncOptions)).toBe(false);
    expect(typeUrlMatches('', TypeUrl.RuncOptions)).toBe(false);
  });

  it('keeps containerd OCI JSON URLs whole', () => {
    expect(normalizeTypeUrl(TypeUrl.OciProcess)).toBe(TypeUrl.OciProcess);
    expect(typeUrlMatches(TypeUrl.OciProcess, TypeUrl.OciSpec)).toBe(false);
    expect(typeUrlMatches(TypeUrl.OciFeatures, TypeUrl.OciFeatures)).toBe(true);
  });
});

describe('Any packing', () => {
  it('unpacks runc Options sent with either URL form, and refuses other types', () => {
    const bare = packMessage(TypeUrl.RuncOptions, runcV1.Options, runcV1.Options.fromPartial({ binaryName: 'crun', root: '/run/x' }));
    const prefixed = { ...bare, typeUrl: `type.googleapis.com/${TypeUrl.RuncOptions}` };
    for (const any of [bare, prefixed]) {
      expect(unpackAny(any, TypeUrl.RuncOptions, runcV1.Options)).toMatchObject({ binaryName: 'crun', root: '/run/x' });
    }
    expect(unpackAny(bare, TypeUrl.RuntimeOptions, runtimeOptions.Options)).toBeUndefined();
    expect(unpackAny(undefined, TypeUrl.RuncOptions, runcV1.Options)).toBeUndefined();
  });

  it('throws on a corrupt payload of the expected type', () => {
    const corrupt = packAny(TypeUrl.RuncOptions, Uint8Array.of(0x32, 0x10, 0x61));
    expect(() => unpackAny(corrupt, TypeUrl.RuncOptions, runcV1.Options)).toThrow();
  });

  it('packAny wraps without copying and packJson/unpackJson round-trip OCI JSON', () => {
    const backing = new Uint8Array([9, 1, 2, 3, 9]);
    const any = packAny('x.Y', backing.subarray(1, 4));
    expect([...any.value]).toEqual([1, 2, 3]);
    backing[2] = 7;
    expect(any.value[1]).toBe(7);

    const resources = { memory: { limit: 1 << 20 }, cpu: { shares: 512 } };
    const json = packJson(TypeUrl.OciLinuxResources, resources);
    expect(json.typeUrl).toBe('types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
    expect(unpackJson(json, TypeUrl.OciLinuxResources)).toEqual(resources);
    expect(unpackJson(json, TypeUrl.OciProcess)).toBeUndefined();
  });
});

describe('events', () => {
  const exitedAt = { seconds: 1_700_000_000n, nanos: 5 };

  it('eventAny encodes the topic message and fills omitted fields with defaults', () => {
    const any = eventAny('/tasks/exit', { containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137, exitedAt });
    expect(any.typeUrl).toBe('containerd.events.TaskExit');
    expect(events.TaskExit.decode(any.value)).toEqual({ containerId: 'c1', id: 'c1', pid: 42, exitStatus: 137, exitedAt });

    const create = eventAny('/tasks/create', { containerId: 'c1', pid: 7, io: { stdin: '', stdout: '/o', stderr: '', terminal: false } });
    expect(events.TaskCreate.decode(create.value)).toEqual({
      containerId: 'c1', bundle: '', rootfs: [], io: { stdin: '', stdout: '/o', stderr: '', terminal: false }, checkpoint: '', pid: 7,
    });
  });

  it('eventAny tolerates explicit undefined fields', () => {
    const any = eventAny('/tasks/delete', { containerId: 'c1', id: undefined, exitedAt: undefined });
    expect(events.TaskDelete.decode(any.value)).toEqual({ containerId: 'c1', pid: 0, exitStatus: 0, exitedAt: undefined, id: '' });
  });

  it('decodeEventAny inverts eventAny for every topic, also with a prefixed URL', () => {
    const topics = Object.values(Topic) as EventTopic[];
    for (const topic of topics) {
      const any = eventAny(topic, { containerId: `id-${topic}` });
      const decoded = decodeEventAny({ ...any, typeUrl: `type.googleapis.com/${any.typeUrl}` });
      expect(decoded?.topic).toBe(topic);
      expect(decoded?.event.containerId).toBe(`id-${topic}`);
    }
    expect(decodeEventAny({ typeUrl: TypeUrl.RuncOptions, value: Buffer.alloc(0) })).toBeUndefined();
  });

  it('eventEnvelope builds the ForwardRequest envelope', () => {
    const ts = { seconds: 1n, nanos: 2 };
    const envelope = eventEnvelope('default', '/tasks/oom', { containerId: 'c1' }, ts);
    const wire = ForwardRequest.encode({ envelope }).finish();
    const back = ForwardRequest.decode(wire).envelope!;
    expect(back.namespace).toBe('default');
    expect(back.topic).toBe('/tasks/oom');
    expect(back.timestamp).toEqual(ts);
    expect(back.event?.typeUrl).toBe('containerd.events.TaskOOM');
    expect(events.TaskOOM.decode(back.event!.value)).toEqual({ containerId: 'c1' });

    const before = Date.now();
    const stamped = eventEnvelope('default', '/tasks/paused', { containerId: 'c1' });
    expect(Number(stamped.timestamp!.seconds) * 1000).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
  });
});

describe('timestamps', () => {
  it('zero time is Go zero time and is recognised as "not set"', () => {
    expect(zeroTimestamp()).toEqual({ seconds: GO_ZERO_TIME_SECONDS, nanos: 0 });
    expect(dateFromTimestamp(zeroTimestamp()).toISOString()).toBe('0001-01-01T00:00:00.000Z');
    expect(isZeroTimestamp(zeroTimestamp())).toBe(true);
    expect(isZeroTimestamp(undefined)).toBe(true);
    expect(isZeroTimestamp({ seconds: 0n, nanos: 0 })).toBe(false);
    expect(exitedAtTimestamp(undefined)).toEqual(zeroTimestamp());
    expect(exitDateFromTimestamp(zeroTimestamp())).toBeUndefined();
  });

  it('converts Dates both ways with non-negative nanos', () => {
    const d = new Date('2026-11-22T15:39:07.552Z');
    expect(timestampFromDate(d)).toEqual({ seconds: 1795361947n, nanos: 552_000_000 });
    expect(dateFromTimestamp({ seconds: 1795361947n, nanos: 552513051 }).getTime()).toBe(d.getTime());
    expect(exitedAtTimestamp(d)).toEqual(timestampFromDate(d));
    expect(exitDateFromTimestamp(timestampFromDate(d))?.getTime()).toBe(d.getTime());

    const before1970 = new Date(-1500); // 1969-12-31T23:59:58.500Z
    expect(timestampFromDate(before1970)).toEqual({ seconds: -2n, nanos: 500_000_000 });
    expect(dateFromTimestamp(timestampFromDate(before1970)).getTime()).toBe(-1500);
    expect(() => timestampFromDate(new Date(Number.NaN))).toThrow(RangeError);
  });

  it('converts epoch nanoseconds exactly', () => {
    expect(timestampFromEpochNanos(1_795_361_947_552_513_051n)).toEqual({ seconds: 1795361947n, nanos: 552513051 });
    expect(timestampFromEpochNanos(-1n)).toEqual({ seconds: -1n, nanos: 999_999_999 });
    expect(timestampFromEpochNanos(0n)).toEqual({ seconds: 0n, nanos: 0 });
  });
});
