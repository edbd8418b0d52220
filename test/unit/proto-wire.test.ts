/**
 * Byte-exact checks of our generated messages against bytes captured from
 * containerd 1.6.20 and the stock runc shim (shim-v2-protocol.md §1.6, §1.9, §2.6, §5.1),
 * plus tag checks for the fields whose numbering is easy to get wrong.
 */
import { describe, expect, it } from 'vitest';
import { BinaryReader } from '@bufbuild/protobuf/wire';
import { decodeResponse } from '../../src/ttrpc/envelope.js';
import { Any } from '../../src/proto/gen/google/protobuf/any.js';
import { Timestamp } from '../../src/proto/gen/google/protobuf/timestamp.js';
import { Empty } from '../../src/proto/gen/google/protobuf/empty.js';
import {
  CreateTaskRequest,
  CreateTaskResponse,
  DeleteResponse,
  ExecProcessRequest,
  StateResponse,
  TaskDefinition,
  UpdateTaskRequest,
} from '../../src/proto/gen/containerd/task/v2/shim.js';
import { Status } from '../../src/proto/gen/containerd/v1/types/task.js';
import { TaskCreate, TaskDelete, TaskExit } from '../../src/proto/gen/containerd/events/task.js';
import { EventsDefinition, ForwardRequest } from '../../src/proto/gen/containerd/services/events/ttrpc/v1/events.js';
import { Options as RuntimeOptions } from '../../src/proto/gen/runtimeoptions/v1/options.js';
import { Options as RuncOptions, CheckpointOptions } from '../../src/proto/gen/containerd/runc/v1/options.js';
import { CreateOptions } from '../../src/proto/gen/containerd/linux/runc/runc.js';
import {
  BootstrapParams,
  BootstrapResult,
  LogLevel,
} from '../../src/proto/gen/containerd/runtime/bootstrap/v1/bootstrap.js';
import { RuntimeInfo } from '../../src/proto/gen/containerd/types/introspection.js';
import { EVENTS_SERVICE, TASK_SERVICE_V2, TypeUrl, unpackAny } from '../../src/proto/typeurls.js';
import { zeroTimestamp } from '../../src/proto/timestamp.js';

/** "08 a8 89 01" → bytes; quoted strings are UTF-8 text. */
function bytes(spec: string): Buffer {
  const parts: Buffer[] = [];
  for (const token of spec.match(/"[^"]*"|[0-9a-f]{2}/gi) ?? []) {
    parts.push(token.startsWith('"') ? Buffer.from(token.slice(1, -1), 'utf8') : Buffer.from(token, 'hex'));
  }
  return Buffer.concat(parts);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Field number → wire type of every top-level field in `buf`, in order. */
function tags(buf: Uint8Array): Array<[number, number]> {
  const reader = new BinaryReader(buf);
  const out: Array<[number, number]> = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    out.push([field, wireType]);
    reader.skip(wireType);
  }
  return out;
}

const VARINT = 0;
const LEN = 2;

describe('captured containerd 1.6.20 bytes', () => {
  it('CreateTaskResponse{pid=17576} is 08 a8 89 01, inside Response.payload (§1.6)', () => {
    expect(hex(CreateTaskResponse.encode({ pid: 17576 }).finish())).toBe('08a88901');

    const response = decodeResponse(bytes('12 04 08 a8 89 01'));
    expect(response.status).toBeUndefined();
    expect(CreateTaskResponse.decode(response.payload)).toEqual({ pid: 17576 });
  });

  it('the captured error Response carries NotFound and its message (§1.6)', () => {
    const body = bytes('0a 28 08 05 12 24 "process does not exist e1: not found"');
    const response = decodeResponse(body);
    expect(response.status?.code).toBe(5);
    expect(response.status?.message).toBe('process does not exist e1: not found');
    // An error response has no payload: our decoders give the all-default message for it.
    expect(Empty.decode(response.payload)).toEqual({});
  });

  it('decodes and re-encodes the DeleteResponse printed by `delete` (§2.6)', () => {
    const captured = bytes('08 a8 89 01 10 89 01 1a 0c 08 9b 99 8c d8 06 10 9b dc ba 87 02');
    const decoded = DeleteResponse.decode(captured);
    expect(decoded).toEqual({
      pid: 17576,
      exitStatus: 137,
      exitedAt: { seconds: 1795361947n, nanos: 552513051 },
    });
    expect(hex(DeleteResponse.encode(decoded).finish())).toBe(hex(captured));
  });

  it('encodes Go zero time as the bytes the runc shim sends for "not exited" (§1.9)', () => {
    const ts = Timestamp.encode(zeroTimestamp()).finish();
    expect(hex(ts)).toBe(hex(bytes('08 80 92 b8 c3 98 fe ff ff ff 01')));
    expect(Timestamp.decode(ts)).toEqual({ seconds: -62135596800n, nanos: 0 });
  });

  it('decodes the runtime options Any that ctr wrote on stdin of `start` (§5.1)', () => {
    const configPath = '/etc/containerd/x.toml'; // 22 bytes, as in the capture (0x16)
    const stdin = bytes(`0a 19 "runtimeoptions.v1.Options" 12 18 12 16 "${configPath}"`);
    const any = Any.decode(stdin);
    expect(any.typeUrl).toBe('runtimeoptions.v1.Options');
    expect(any.typeUrl).toBe(TypeUrl.RuntimeOptions);

    const options = unpackAny(any, TypeUrl.RuntimeOptions, RuntimeOptions);
    expect(options).toEqual({ typeUrl: '', configPath, configBody: Buffer.alloc(0) });
    // And our own encoding of the same value is byte-identical.
    expect(hex(Any.encode({ typeUrl: TypeUrl.RuntimeOptions, value: Buffer.from(RuntimeOptions.encode(options!).finish()) }).finish())).toBe(
      hex(stdin),
    );
  });

  it('decodes an empty stdin as an empty Any (no options)', () => {
    expect(Any.decode(new Uint8Array(0))).toEqual({ typeUrl: '', value: Buffer.alloc(0) });
  });
});

describe('bootstrap protocol (§2.9)', () => {
  it('round-trips a negative log level as a 10-byte varint', () => {
    const params = BootstrapParams.fromPartial({ instanceId: 'c1', namespace: 'default', logLevel: LogLevel.LOG_LEVEL_DEBUG });
    const encoded = BootstrapParams.encode(params).finish();
    expect(hex(encoded)).toContain(hex(bytes('18 fc ff ff ff ff ff ff ff ff 01')));
    expect(BootstrapParams.decode(encoded)).toEqual(params);
    expect(BootstrapParams.decode(encoded).logLevel).toBe(-4);
  });

  it('keeps log levels that are not in the enum (open enum)', () => {
    const decoded = BootstrapParams.decode(bytes('18 fa ff ff ff ff ff ff ff ff 01'));
    expect(decoded.logLevel).toBe(-6);
    expect(BootstrapParams.decode(bytes('18 0b')).logLevel).toBe(11);
    expect(BootstrapParams.decode(bytes('18 f8 ff ff ff ff ff ff ff ff 01')).logLevel).toBe(LogLevel.LOG_LEVEL_TRACE);
  });

  it('tracks socket_dir presence (proto3 optional) and places the options Any in extensions', () => {
    const options = { typeUrl: TypeUrl.RuntimeOptions, value: Buffer.from(RuntimeOptions.encode(RuntimeOptions.fromPartial({ configPath: '/x' })).finish()) };
    const withDir = BootstrapParams.fromPartial({ instanceId: 'c1', namespace: 'ns', socketDir: '', extensions: [{ value: options }] });
    const encoded = BootstrapParams.encode(withDir).finish();
    expect(tags(encoded)).toEqual([[1, LEN], [2, LEN], [8, LEN], [9, LEN]]);
    const decoded = BootstrapParams.decode(encoded);
    expect(decoded.socketDir).toBe('');
    expect(unpackAny(decoded.extensions[0]?.value, TypeUrl.RuntimeOptions, RuntimeOptions)?.configPath).toBe('/x');

    const withoutDir = BootstrapParams.decode(BootstrapParams.encode(BootstrapParams.fromPartial({ instanceId: 'c1' })).finish());
    expect(withoutDir.socketDir).toBeUndefined();
  });

  it('encodes BootstrapResult with its map and field numbers', () => {
    const result = BootstrapResult.fromPartial({ version: 2, address: 'unix:///run/containerd/s/abc', protocol: 'ttrpc', metadata: { a: 'b' } });
    const encoded = BootstrapResult.encode(result).finish();
    expect(tags(encoded)).toEqual([[1, VARINT], [2, LEN], [3, LEN], [5, LEN]]);
    expect(BootstrapResult.decode(encoded)).toEqual(result);
  });
});

describe('field numbers that differ between similar messages', () => {
  it('ExecProcessRequest puts spec at 7 and terminal at 3 (unlike CreateTaskRequest)', () => {
    const exec = ExecProcessRequest.fromPartial({
      id: 'c', execId: 'e', terminal: true, stdin: 'i', stdout: 'o', stderr: 'r',
      spec: { typeUrl: TypeUrl.OciProcess, value: Buffer.from('{}') },
    });
    expect(tags(ExecProcessRequest.encode(exec).finish())).toEqual([
      [1, LEN], [2, LEN], [3, VARINT], [4, LEN], [5, LEN], [6, LEN], [7, LEN],
    ]);
    const create = CreateTaskRequest.fromPartial({
      id: 'c', bundle: '/b', rootfs: [{ type: 'overlay', source: 'overlay', options: ['lowerdir=/l'] }], terminal: true,
      stdin: 'i', stdout: 'o', stderr: 'r', checkpoint: 'k', parentCheckpoint: 'p', options: { typeUrl: TypeUrl.RuncOptions },
    });
    const encoded = CreateTaskRequest.encode(create).finish();
    expect(tags(encoded)).toEqual([
      [1, LEN], [2, LEN], [3, LEN], [4, VARINT], [5, LEN], [6, LEN], [7, LEN], [8, LEN], [9, LEN], [10, LEN],
    ]);
    expect(CreateTaskRequest.decode(encoded)).toEqual(create);
  });

  it('StateResponse: status enum at 4, exited_at at 10, exec_id at 11', () => {
    const state = StateResponse.fromPartial({
      id: 'c', bundle: '/b', pid: 1, status: Status.RUNNING, stdin: 'i', stdout: 'o', stderr: 'e',
      terminal: true, exitStatus: 1, exitedAt: zeroTimestamp(), execId: 'x',
    });
    const encoded = StateResponse.encode(state).finish();
    expect(tags(encoded)).toEqual([
      [1, LEN], [2, LEN], [3, VARINT], [4, VARINT], [5, LEN], [6, LEN], [7, LEN], [8, VARINT], [9, VARINT], [10, LEN], [11, LEN],
    ]);
    expect(StateResponse.decode(encoded)).toEqual(state);
    expect([Status.UNKNOWN, Status.CREATED, Status.RUNNING, Status.STOPPED, Status.PAUSED, Status.PAUSING]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('TaskExit carries id at 2 and TaskDelete carries id at 5', () => {
    const at = { seconds: 1n, nanos: 2 };
    expect(tags(TaskExit.encode({ containerId: 'c', id: 'e', pid: 3, exitStatus: 4, exitedAt: at }).finish())).toEqual([
      [1, LEN], [2, LEN], [3, VARINT], [4, VARINT], [5, LEN],
    ]);
    expect(tags(TaskDelete.encode({ containerId: 'c', pid: 3, exitStatus: 4, exitedAt: at, id: 'e' }).finish())).toEqual([
      [1, LEN], [2, VARINT], [3, VARINT], [4, LEN], [5, LEN],
    ]);
    const create = TaskCreate.fromPartial({
      containerId: 'c', bundle: '/b', rootfs: [{ type: 'bind' }], io: { stdin: 'i', terminal: true }, checkpoint: 'k', pid: 9,
    });
    expect(tags(TaskCreate.encode(create).finish())).toEqual([[1, LEN], [2, LEN], [3, LEN], [4, LEN], [5, LEN], [6, VARINT]]);
    expect(hex(TaskCreate.encode(create).finish())).toContain(hex(bytes('22 05 0a 01 "i" 20 01')));
  });

  it('UpdateTaskRequest annotations are a map of {1 key, 2 value} entries', () => {
    const encoded = UpdateTaskRequest.encode(UpdateTaskRequest.fromPartial({ id: 'c', annotations: { k: 'v' } })).finish();
    expect(hex(encoded)).toBe(hex(bytes('0a 01 "c" 1a 06 0a 01 "k" 12 01 "v"')));
    expect(UpdateTaskRequest.decode(encoded).annotations).toEqual({ k: 'v' });
  });

  it('ForwardRequest{Envelope{timestamp, namespace, topic, event}}', () => {
    const encoded = ForwardRequest.encode({
      envelope: { timestamp: { seconds: 5n, nanos: 0 }, namespace: 'ns', topic: '/tasks/oom', event: { typeUrl: TypeUrl.TaskOOM, value: Buffer.from('0a0163', 'hex') } },
    }).finish();
    const reader = new BinaryReader(encoded);
    expect(reader.tag()).toEqual([1, LEN]);
    expect(tags(reader.bytes())).toEqual([[1, LEN], [2, LEN], [3, LEN], [4, LEN]]);
  });

  it('runc Options, CheckpointOptions and legacy CreateOptions use their upstream numbers', () => {
    const runc = RuncOptions.fromPartial({
      noPivotRoot: true, noNewKeyring: true, shimCgroup: 's', ioUid: 1, ioGid: 2, binaryName: 'crun', root: '/r',
      criuPath: 'c', systemdCgroup: true, criuImagePath: 'i', criuWorkPath: 'w', taskApiAddress: 'a', taskApiVersion: 3,
    });
    expect(tags(RuncOptions.encode(runc).finish()).map(([f]) => f)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(hex(RuncOptions.encode(RuncOptions.fromPartial({ binaryName: 'crun', systemdCgroup: true })).finish())).toBe(
      hex(bytes('32 04 "crun" 48 01')),
    );
    const legacy = CreateOptions.decode(bytes('08 01 40 01 4a 02 "/s" 50 05 58 06'));
    expect(legacy).toMatchObject({ noPivotRoot: true, noNewKeyring: true, shimCgroup: '/s', ioUid: 5, ioGid: 6 });
    const ckpt = CheckpointOptions.decode(bytes('08 01 32 03 "net" 3a 04 "soft" 42 01 "i" 4a 01 "w" 52 01 "p"'));
    expect(ckpt).toMatchObject({ exit: true, emptyNamespaces: ['net'], cgroupsMode: 'soft', imagePath: 'i', workPath: 'w', parentPath: 'p' });
  });

  it('RuntimeInfo for `-info` (§2.7)', () => {
    const info = RuntimeInfo.fromPartial({
      name: 'io.containerd.tsshim.v2', version: { version: '0.1.0', revision: 'abc' },
      features: { typeUrl: TypeUrl.OciFeatures, value: Buffer.from('{}') }, annotations: { 'containerd.io/runtime-allow-mounts': 'overlay' },
    });
    const encoded = RuntimeInfo.encode(info).finish();
    expect(tags(encoded)).toEqual([[1, LEN], [2, LEN], [4, LEN], [5, LEN]]);
    expect(RuntimeInfo.decode(encoded)).toEqual(info);
  });

  it('skips unknown fields (newer containerd may add some)', () => {
    const withExtra = Buffer.concat([CreateTaskResponse.encode({ pid: 7 }).finish(), bytes('f2 07 03 "new" 98 08 2a')]);
    expect(CreateTaskResponse.decode(withExtra)).toEqual({ pid: 7 });
  });
});

describe('service definitions', () => {
  it('Task is containerd.task.v2.Task with the 17 methods of §3.1', () => {
    expect(TaskDefinition.fullName).toBe(TASK_SERVICE_V2);
    expect(Object.values(TaskDefinition.methods).map((m) => m.name).sort()).toEqual(
      ['Checkpoint', 'CloseIO', 'Connect', 'Create', 'Delete', 'Exec', 'Kill', 'Pause', 'Pids', 'ResizePty', 'Resume',
        'Shutdown', 'Start', 'State', 'Stats', 'Update', 'Wait'],
    );
    expect(TaskDefinition.methods.exec.responseType).toBe(Empty);
    expect(Object.values(TaskDefinition.methods).every((m) => !m.requestStream && !m.responseStream)).toBe(true);
  });

  it('Events is containerd.services.events.ttrpc.v1.Events/Forward', () => {
    expect(EventsDefinition.fullName).toBe(EVENTS_SERVICE);
    expect(EventsDefinition.methods.forward.name).toBe('Forward');
  });
});
