/**
 * ttrpc framing: a 10-byte header (uint32 BE data length, uint32 BE stream id, uint8 type,
 * uint8 flags) followed by `length` bytes of data.
 */
import { oversizedMessage } from './status.js';

export const FRAME_HEADER_LENGTH = 10;
/** Largest data length either side accepts (4 MiB), as in the Go implementation. */
export const MAX_MESSAGE = 4 << 20;

export const MessageType = {
  Request: 0x01,
  Response: 0x02,
  Data: 0x03,
} as const;

export const Flag = {
  /** Request: non-unary, client sends no data. Data: the sender is done. */
  RemoteClosed: 0x01,
  /** Request: non-unary, client will send Data frames. */
  RemoteOpen: 0x02,
  /** Data: the frame carries no payload. */
  NoData: 0x04,
} as const;

export interface Frame {
  kind: 'frame';
  streamId: number;
  type: number;
  flags: number;
  /** May alias the chunk given to `FrameDecoder.push`; copy it to keep it past that chunk's life. */
  data: Uint8Array;
}

/** A frame whose announced length exceeded MAX_MESSAGE; its data was read and thrown away. */
export interface OversizedFrame {
  kind: 'oversized';
  streamId: number;
  type: number;
  flags: number;
  length: number;
}

export type DecodedFrame = Frame | OversizedFrame;

export class FrameTooLargeError extends Error {
  readonly length: number;
  constructor(length: number) {
    super(oversizedMessage(length, MAX_MESSAGE));
    this.name = 'FrameTooLargeError';
    this.length = length;
  }
}

/** Writes a header at `offset` of `target`. */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  length: number,
  streamId: number,
  type: number,
  flags: number,
): void {
  if (length > MAX_MESSAGE) throw new FrameTooLargeError(length);
  const view = new DataView(target.buffer, target.byteOffset + offset, FRAME_HEADER_LENGTH);
  view.setUint32(0, length);
  view.setUint32(4, streamId >>> 0);
  view.setUint8(8, type);
  view.setUint8(9, flags);
}

/** Header + data in one buffer (one write, one syscall). */
export function encodeFrame(streamId: number, type: number, flags: number, data: Uint8Array): Buffer {
  if (data.length > MAX_MESSAGE) throw new FrameTooLargeError(data.length);
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + data.length);
  writeFrameHeader(out, 0, data.length, streamId, type, flags);
  out.set(data, FRAME_HEADER_LENGTH);
  return out;
}

const EMPTY = new Uint8Array(0);

const enum State {
  Header,
  Body,
  Discard,
}

/**
 * Incremental decoder: accepts chunks cut anywhere and returns the frames completed by each.
 * Memory is bounded by MAX_MESSAGE: the body buffer is allocated only for lengths within the
 * limit, and the data of an oversized frame is skipped as it streams by.
 */
export class FrameDecoder {
  private state = State.Header;
  private readonly header = new Uint8Array(FRAME_HEADER_LENGTH);
  private headerFill = 0;
  private length = 0;
  private streamId = 0;
  private type = 0;
  private flags = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private discardLeft = 0;

  /** True while a frame has been started but not completed (a close now truncates it). */
  get midFrame(): boolean {
    return this.state !== State.Header || this.headerFill > 0;
  }

  push(chunk: Uint8Array): DecodedFrame[] {
    const out: DecodedFrame[] = [];
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      if (this.state === State.Header) {
        if (this.headerFill === 0 && end - off >= FRAME_HEADER_LENGTH) {
          this.parseHeader(chunk, off);
          off += FRAME_HEADER_LENGTH;
        } else {
          const n = Math.min(FRAME_HEADER_LENGTH - this.headerFill, end - off);
          this.header.set(chunk.subarray(off, off + n), this.headerFill);
          this.headerFill += n;
          off += n;
          if (this.headerFill < FRAME_HEADER_LENGTH) break;
          this.headerFill = 0;
          this.parseHeader(this.header, 0);
        }
        if (this.length > MAX_MESSAGE) {
          this.state = State.Discard;
          this.discardLeft = this.length;
        } else if (this.length === 0) {
          out.push(this.frame(EMPTY));
        } else {
          this.state = State.Body;
        }
      } else if (this.state === State.Body) {
        const avail = end - off;
        if (this.bodyFill === 0 && avail >= this.length) {
          // Whole body inside this chunk: no copy.
          out.push(this.frame(chunk.subarray(off, off + this.length)));
          off += this.length;
          this.state = State.Header;
          continue;
        }
        if (this.body === null) this.body = new Uint8Array(this.length);
        const n = Math.min(this.length - this.bodyFill, avail);
        this.body.set(chunk.subarray(off, off + n), this.bodyFill);
        this.bodyFill += n;
        off += n;
        if (this.bodyFill === this.length) {
          out.push(this.frame(this.body));
          this.body = null;
          this.bodyFill = 0;
          this.state = State.Header;
        }
      } else {
        const n = Math.min(this.discardLeft, end - off);
        this.discardLeft -= n;
        off += n;
        if (this.discardLeft === 0) {
          out.push({ kind: 'oversized', streamId: this.streamId, type: this.type, flags: this.flags, length: this.length });
          this.state = State.Header;
        }
      }
    }
    return out;
  }

  private parseHeader(src: Uint8Array, off: number): void {
    // Manual big-endian reads: cheaper than a DataView per frame.
    this.length = ((src[off]! << 24) | (src[off + 1]! << 16) | (src[off + 2]! << 8) | src[off + 3]!) >>> 0;
    this.streamId = ((src[off + 4]! << 24) | (src[off + 5]! << 16) | (src[off + 6]! << 8) | src[off + 7]!) >>> 0;
    this.type = src[off + 8]!;
    this.flags = src[off + 9]!;
  }

  private frame(data: Uint8Array): Frame {
    return { kind: 'frame', streamId: this.streamId, type: this.type, flags: this.flags, data };
  }
}
