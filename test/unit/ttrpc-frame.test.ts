import { describe, expect, it } from 'vitest';
import {
  FRAME_HEADER_LENGTH,
  FrameDecoder,
  FrameTooLargeError,
  MAX_MESSAGE,
  MessageType,
  encodeFrame,
  type DecodedFrame,
} from '../../src/ttrpc/frame.js';

function concat(parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

function decodeAll(bytes: Uint8Array, chunkSize: number | (() => number)): DecodedFrame[] {
  const dec = new FrameDecoder();
  const out: DecodedFrame[] = [];
  let off = 0;
  while (off < bytes.length) {
    const size = typeof chunkSize === 'number' ? chunkSize : chunkSize();
    out.push(...dec.push(bytes.subarray(off, off + size)));
    off += size;
  }
  expect(dec.midFrame).toBe(false);
  return out;
}

/** Frames as plain values so they compare independently of buffer aliasing. */
function plain(frames: DecodedFrame[]) {
  return frames.map((f) =>
    f.kind === 'frame'
      ? { kind: f.kind, streamId: f.streamId, type: f.type, flags: f.flags, data: Buffer.from(f.data).toString('hex') }
      : f,
  );
}

describe('encodeFrame', () => {
  it('writes the 10-byte big-endian header seen on the wire', () => {
    // Header of a Create request captured from containerd 1.6.20: len 231, sid 1, Request, unary.
    const frame = encodeFrame(1, MessageType.Request, 0, new Uint8Array(231));
    expect(frame.subarray(0, FRAME_HEADER_LENGTH).toString('hex')).toBe('000000e7000000010100');
    expect(frame.length).toBe(241);
  });

  it('encodes large stream ids and flags unsigned', () => {
    const frame = encodeFrame(0xfffffffd, MessageType.Data, 0x05, new Uint8Array([7]));
    expect(frame.toString('hex')).toBe('00000001fffffffd030507');
  });

  it('accepts exactly MAX_MESSAGE and refuses one byte more', () => {
    expect(encodeFrame(1, MessageType.Response, 0, new Uint8Array(MAX_MESSAGE)).length).toBe(MAX_MESSAGE + 10);
    expect(() => encodeFrame(1, MessageType.Response, 0, new Uint8Array(MAX_MESSAGE + 1))).toThrow(FrameTooLargeError);
    expect(() => encodeFrame(1, MessageType.Response, 0, new Uint8Array(MAX_MESSAGE + 1))).toThrow(
      'message length 4194305 exceed maximum message size of 4194304',
    );
  });
});

describe('FrameDecoder', () => {
  const frames = [
    encodeFrame(1, MessageType.Request, 0, Buffer.from('hello')),
    encodeFrame(3, MessageType.Response, 0, new Uint8Array(0)),
    encodeFrame(5, MessageType.Request, 0, Buffer.alloc(70_000, 0xab)),
    encodeFrame(7, MessageType.Data, 0x05, new Uint8Array(0)),
    encodeFrame(9, 0x7f, 0xff, Buffer.from([1, 2, 3])),
  ];
  const stream = concat(frames);
  const expected = plain(decodeAll(stream, stream.length));

  it('decodes several frames from one chunk, including zero-length ones', () => {
    expect(expected.map((f) => f.streamId)).toEqual([1, 3, 5, 7, 9]);
    expect(expected[0]).toEqual({ kind: 'frame', streamId: 1, type: 1, flags: 0, data: Buffer.from('hello').toString('hex') });
    expect(expected[1]).toEqual({ kind: 'frame', streamId: 3, type: 2, flags: 0, data: '' });
    expect(expected[3]).toMatchObject({ type: 3, flags: 5, data: '' });
    expect(expected[4]).toMatchObject({ type: 0x7f, flags: 0xff, data: '010203' });
  });

  it('gives the same frames when fed one byte at a time', () => {
    expect(plain(decodeAll(stream, 1))).toEqual(expected);
  });

  it('gives the same frames for random chunk boundaries', () => {
    for (let round = 0; round < 20; round++) {
      expect(plain(decodeAll(stream, () => 1 + Math.floor(Math.random() * 300)))).toEqual(expected);
    }
  });

  it('emits a zero-length frame as soon as its header is complete', () => {
    const dec = new FrameDecoder();
    const f = encodeFrame(11, MessageType.Response, 0, new Uint8Array(0));
    expect(dec.push(f.subarray(0, 9))).toEqual([]);
    expect(dec.midFrame).toBe(true);
    const out = dec.push(f.subarray(9));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ kind: 'frame', streamId: 11, data: new Uint8Array(0) });
    expect(dec.midFrame).toBe(false);
  });

  it('reports a partial frame as midFrame (truncation on close is detectable)', () => {
    const dec = new FrameDecoder();
    dec.push(encodeFrame(1, MessageType.Request, 0, Buffer.alloc(100)).subarray(0, 50));
    expect(dec.midFrame).toBe(true);
  });

  it('discards an oversized frame, reports it with its stream id, and continues', () => {
    const length = 5 * 1024 * 1024;
    const header = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x21, MessageType.Request, 0]);
    header.writeUInt32BE(length, 0);
    const body = Buffer.alloc(length, 0x55);
    const next = encodeFrame(0x23, MessageType.Request, 0, Buffer.from('after'));

    const dec = new FrameDecoder();
    const out: DecodedFrame[] = [];
    out.push(...dec.push(header));
    for (let off = 0; off < length; off += 65536) out.push(...dec.push(body.subarray(off, off + 65536)));
    expect(out).toEqual([{ kind: 'oversized', streamId: 0x21, type: MessageType.Request, flags: 0, length }]);
    out.push(...dec.push(next));
    expect(plain(out.slice(1))).toEqual([
      { kind: 'frame', streamId: 0x23, type: 1, flags: 0, data: Buffer.from('after').toString('hex') },
    ]);
  });

  it('does not buffer the data announced by a huge header', () => {
    const dec = new FrameDecoder();
    expect(dec.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]))).toEqual([]);
    const chunk = Buffer.alloc(1 << 20);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 64; i++) expect(dec.push(chunk)).toEqual([]);
    const grown = process.memoryUsage().arrayBuffers - before;
    // 64 MiB went through; a buffering decoder would hold all of it.
    expect(grown).toBeLessThan(8 * 1024 * 1024);
    expect(dec.midFrame).toBe(true);
  });

  it('copies a body assembled from several chunks into its own buffer', () => {
    const f = encodeFrame(1, MessageType.Request, 0, Buffer.from('abcdef'));
    const a = Buffer.from(f.subarray(0, 12));
    const b = Buffer.from(f.subarray(12));
    const dec = new FrameDecoder();
    dec.push(a);
    const [frame] = dec.push(b);
    a.fill(0);
    b.fill(0);
    expect(frame?.kind === 'frame' && Buffer.from(frame.data).toString()).toBe('abcdef');
  });
});
