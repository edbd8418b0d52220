import { describe, expect, it } from 'vitest';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import {
  ProtoDecodeError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../../src/ttrpc/envelope.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

describe('Request envelope', () => {
  it('round-trips every field', () => {
    const req = {
      service: 'containerd.task.v2.Task',
      method: 'Create',
      payload: Buffer.from([1, 2, 3, 0, 255]),
      timeoutNano: 2_000_000_000,
      metadata: [
        { key: 'containerd-namespace-ttrpc', value: 'k8s.io' },
        { key: 'traceparent', value: '00-abc-01' },
        { key: 'traceparent', value: 'second' },
        { key: 'ключ', value: '値 ✓' },
        { key: '', value: '' },
      ],
    };
    const decoded = decodeRequest(encodeRequest(req));
    expect({ ...decoded, payload: hex(decoded.payload) }).toEqual({ ...req, payload: hex(req.payload) });
  });

  it('starts like the Create request captured from containerd', () => {
    const buf = encodeRequest({ service: 'containerd.task.v2.Task', method: 'Create', payload: Buffer.from([0x0a, 0x01, 0x41]) });
    expect(hex(buf.subarray(0, 2 + 23 + 2 + 6 + 1))).toBe(
      '0a17' + hex(Buffer.from('containerd.task.v2.Task')) + '1206' + hex(Buffer.from('Create')) + '1a',
    );
  });

  it('leaves default values off the wire and decodes an empty message to defaults', () => {
    expect(encodeRequest({ service: '', method: '' }).length).toBe(0);
    expect(decodeRequest(new Uint8Array(0))).toEqual({
      service: '',
      method: '',
      payload: new Uint8Array(0),
      timeoutNano: 0,
      metadata: [],
    });
  });

  it('reserves headroom in front of the message', () => {
    const plainBuf = encodeRequest({ service: 's', method: 'm' });
    const withRoom = encodeRequest({ service: 's', method: 'm' }, 10);
    expect(withRoom.length).toBe(plainBuf.length + 10);
    expect(hex(withRoom.subarray(10))).toBe(hex(plainBuf));
  });

  it.each([1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1, -1, -2_000_000_000, -(2 ** 40)])(
    'round-trips timeout_nano %d and matches a reference encoder',
    (timeoutNano) => {
      const ours = encodeRequest({ service: 's', method: 'm', timeoutNano });
      const ref = new BinaryWriter()
        .tag(1, WireType.LengthDelimited)
        .string('s')
        .tag(2, WireType.LengthDelimited)
        .string('m')
        .tag(4, WireType.Varint)
        .int64(BigInt(timeoutNano))
        .finish();
      expect(hex(ours)).toBe(hex(ref));
      expect(decodeRequest(ours).timeoutNano).toBe(timeoutNano);
    },
  );

  it('decodes what a reference encoder produced, in any field order, skipping unknown fields', () => {
    const w = new BinaryWriter();
    w.tag(99, WireType.Varint).uint64(12345678901234n);
    w.tag(5, WireType.LengthDelimited).fork().tag(2, WireType.LengthDelimited).string('v1').tag(1, WireType.LengthDelimited).string('k').tag(7, WireType.Bit32).fixed32(9).join();
    w.tag(2, WireType.LengthDelimited).string('Wait');
    w.tag(100, WireType.Bit64).fixed64(1n);
    w.tag(3, WireType.LengthDelimited).bytes(new Uint8Array([9, 8, 7]));
    w.tag(101, WireType.LengthDelimited).bytes(new Uint8Array(300));
    w.tag(1, WireType.LengthDelimited).string('svc');
    w.tag(4, WireType.Varint).int64(-5n);
    w.tag(102, WireType.Bit32).fixed32(7);
    const req = decodeRequest(w.finish());
    expect(req.service).toBe('svc');
    expect(req.method).toBe('Wait');
    expect([...req.payload]).toEqual([9, 8, 7]);
    expect(req.timeoutNano).toBe(-5);
    expect(req.metadata).toEqual([{ key: 'k', value: 'v1' }]);
  });

  it('is readable by a reference decoder', () => {
    const buf = encodeRequest({ service: 'a.B', method: 'C', payload: new Uint8Array([1]), timeoutNano: -7, metadata: [{ key: 'x', value: 'y' }] });
    const r = new BinaryReader(buf);
    const seen: Record<number, unknown> = {};
    while (r.pos < r.len) {
      const [field] = r.tag();
      if (field === 1 || field === 2) seen[field] = r.string();
      else if (field === 3) seen[field] = [...r.bytes()];
      else if (field === 4) seen[field] = BigInt(r.int64());
      else if (field === 5) seen[field] = hex(r.bytes());
    }
    expect(seen).toEqual({ 1: 'a.B', 2: 'C', 3: [1], 4: -7n, 5: '0a0178120179' });
  });
});

describe('Response envelope', () => {
  it('matches the OK response captured from containerd (status absent)', () => {
    const payload = bytes('08 a8 89 01'); // CreateTaskResponse{pid=17576}
    expect(hex(encodeResponse({ payload }))).toBe('120408a88901');
    const decoded = decodeResponse(bytes('12 04 08 a8 89 01'));
    expect(decoded.status).toBeUndefined();
    expect(hex(decoded.payload)).toBe('08a88901');
  });

  it('matches the error response captured from containerd', () => {
    const message = 'process does not exist e1: not found';
    const wire = '0a28 0805 1224' + hex(Buffer.from(message));
    expect(hex(encodeResponse({ status: { code: 5, message } }))).toBe(wire.replace(/\s+/g, ''));
    expect(decodeResponse(bytes(wire))).toEqual({ status: { code: 5, message, details: [] }, payload: new Uint8Array(0) });
  });

  it('encodes an OK Empty response as zero bytes', () => {
    expect(encodeResponse({}).length).toBe(0);
    expect(encodeResponse({ payload: new Uint8Array(0) }).length).toBe(0);
    expect(decodeResponse(new Uint8Array(0))).toEqual({ payload: new Uint8Array(0) });
  });

  it('keeps status details as raw Any messages', () => {
    const any = new BinaryWriter().tag(1, WireType.LengthDelimited).string('x.Y').tag(2, WireType.LengthDelimited).bytes(new Uint8Array([1, 2])).finish();
    const buf = encodeResponse({ status: { code: 9, message: 'm', details: [any, new Uint8Array(0)] } });
    const st = decodeResponse(buf).status!;
    expect(st.code).toBe(9);
    expect(st.details.map(hex)).toEqual([hex(any), '']);
  });

  it('decodes a negative int32 code (10-byte sign-extended varint)', () => {
    const ref = new BinaryWriter().tag(1, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(-3).join().finish();
    expect(decodeResponse(ref).status?.code).toBe(-3);
    expect(hex(encodeResponse({ status: { code: -3, message: '' } }))).toBe(hex(ref));
  });
});

describe('decoding garbage', () => {
  const cases: Array<[string, string]> = [
    ['truncated varint in a tag', '80'],
    ['truncated varint value', '20 ff ff'],
    ['varint longer than 10 bytes', '20 ff ff ff ff ff ff ff ff ff ff 01'],
    ['varint overflowing 64 bits', '20 ff ff ff ff ff ff ff ff ff 7f'],
    ['length past the end', '0a 05 61 62'],
    ['huge length', '1a ff ff ff ff 0f 00'],
    ['wrong wire type for a known field', '0d 00 00 00 00'],
    ['varint where a string belongs', '08 01'],
    ['invalid wire type 6', '0e'],
    ['invalid wire type 7', '0f 00'],
    ['group start', '0b'],
    ['field number 0', '02 00'],
    ['truncated fixed64 of an unknown field', '31 01 02'],
    ['truncated fixed32 of an unknown field', 'fd 01 01'],
    ['invalid UTF-8 in a string', '0a 02 c3 28'],
    ['garbage nested metadata', '2a 03 0a 05 61'],
  ];

  it.each(cases)('request: %s → ProtoDecodeError', (_name, h) => {
    expect(() => decodeRequest(bytes(h))).toThrow(ProtoDecodeError);
  });

  it('response: broken nested status → ProtoDecodeError', () => {
    expect(() => decodeResponse(bytes('0a 03 08 80'))).toThrow(ProtoDecodeError);
    expect(() => decodeResponse(bytes('0a 02 1a 05'))).toThrow(ProtoDecodeError);
    expect(() => decodeResponse(bytes('12 09 00'))).toThrow(ProtoDecodeError);
  });

  it('random bytes either decode or throw ProtoDecodeError, never anything else', () => {
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    let decoded = 0;
    for (let i = 0; i < 20_000; i++) {
      const buf = new Uint8Array(rand() % 64);
      for (let j = 0; j < buf.length; j++) buf[j] = rand() & 0xff;
      for (const decode of [decodeRequest, decodeResponse]) {
        try {
          decode(buf);
          decoded++;
        } catch (err) {
          expect(err).toBeInstanceOf(ProtoDecodeError);
        }
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });
});
