/**
 * Hand-written protobuf codec for the ttrpc envelope messages (package `ttrpc`):
 *
 *   Request  { 1 service string, 2 method string, 3 payload bytes, 4 timeout_nano int64,
 *              5 metadata repeated KeyValue { 1 key string, 2 value string } }
 *   Response { 1 status google.rpc.Status { 1 code int32, 2 message string,
 *                                           3 details repeated google.protobuf.Any },
 *              2 payload bytes }
 *
 * Four fixed messages do not justify a protobuf runtime on the shim's startup path.
 * Decoding treats its input as hostile: every read is bounds-checked and every failure is a
 * ProtoDecodeError. Unknown fields are skipped by wire type. A known field with an unexpected
 * wire type is rejected (stricter than protobuf-go, which would keep it as an unknown field;
 * no real sender produces that, so it only ever signals garbage).
 * Decoded `bytes` fields alias the input buffer (no copy).
 */

export interface KeyValue {
  key: string;
  value: string;
}

export interface RequestEnvelope {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Remaining deadline in ns; 0 = none. May be negative (deadline already passed). */
  timeoutNano: number;
  metadata: KeyValue[];
}

export interface RpcStatus {
  code: number;
  message: string;
  /** Raw serialized `google.protobuf.Any` messages, kept as they came. */
  details: Uint8Array[];
}

export interface ResponseEnvelope {
  /** Absent on success (what Go servers send). */
  status?: RpcStatus;
  payload: Uint8Array;
}

export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoDecodeError';
  }
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bounds-checked cursor over one message (or a nested sub-range). */
class ProtoReader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** Returns [fieldNumber, wireType]. */
  tag(): [number, number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field < 1 || field > 0x1fffffff) throw new ProtoDecodeError(`invalid field number ${field}`);
    return [field, t % 8];
  }

  /** Reads a varint of up to 10 bytes as the signed int64 it encodes (as a JS number). */
  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= this.end) throw new ProtoDecodeError('truncated varint');
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let lo = b & 0x7f;
    let hi = 0;
    for (let i = 1; i < 10; i++) {
      if (pos >= this.end) throw new ProtoDecodeError('truncated varint');
      b = buf[pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >>> 4;
      } else if (i < 9) hi |= (b & 0x7f) << (3 + 7 * (i - 5));
      else {
        if (b > 1) throw new ProtoDecodeError('varint overflows 64 bits');
        hi |= b << 31;
      }
      if (b < 0x80) {
        this.pos = pos;
        return (hi | 0) * 0x1_0000_0000 + (lo >>> 0);
      }
    }
    throw new ProtoDecodeError('varint overflows 64 bits');
  }

  /** Body of a length-delimited field: returns [start, end] within buf. */
  lengthDelimited(): [number, number] {
    const len = this.varint();
    if (len < 0 || len > this.end - this.pos) throw new ProtoDecodeError('length past end of message');
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }

  bytes(): Uint8Array {
    const [start, end] = this.lengthDelimited();
    return start === end ? EMPTY : this.buf.subarray(start, end);
  }

  string(): string {
    const [start, end] = this.lengthDelimited();
    if (start === end) return '';
    try {
      return utf8.decode(this.buf.subarray(start, end));
    } catch {
      throw new ProtoDecodeError('string field contains invalid UTF-8');
    }
  }

  sub(): ProtoReader {
    const [start, end] = this.lengthDelimited();
    return new ProtoReader(this.buf, start, end);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_FIXED32:
        this.advance(4);
        return;
      default:
        // 3/4 are groups (never used by proto3 senders), 6/7 do not exist.
        throw new ProtoDecodeError(`unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new ProtoDecodeError('truncated fixed-width field');
    this.pos += n;
  }
}

function expectWire(field: number, actual: number, expected: number): void {
  if (actual !== expected) {
    throw new ProtoDecodeError(`field ${field}: wire type ${actual}, expected ${expected}`);
  }
}

export function decodeRequest(buf: Uint8Array): RequestEnvelope {
  const req: RequestEnvelope = { service: '', method: '', payload: EMPTY, timeoutNano: 0, metadata: [] };
  const r = new ProtoReader(buf, 0, buf.length);
  while (!r.done) {
    const [field, wire] = r.tag();
    switch (field) {
      case 1:
        expectWire(field, wire, WIRE_LEN);
        req.service = r.string();
        break;
      case 2:
        expectWire(field, wire, WIRE_LEN);
        req.method = r.string();
        break;
      case 3:
        expectWire(field, wire, WIRE_LEN);
        req.payload = r.bytes();
        break;
      case 4:
        expectWire(field, wire, WIRE_VARINT);
        req.timeoutNano = r.varint();
        break;
      case 5:
        expectWire(field, wire, WIRE_LEN);
        req.metadata.push(decodeKeyValue(r.sub()));
        break;
      default:
        r.skip(wire);
    }
  }
  return req;
}

function decodeKeyValue(r: ProtoReader): KeyValue {
  const kv: KeyValue = { key: '', value: '' };
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectWire(field, wire, WIRE_LEN);
      kv.key = r.string();
    } else if (field === 2) {
      expectWire(field, wire, WIRE_LEN);
      kv.value = r.string();
    } else r.skip(wire);
  }
  return kv;
}

export function decodeResponse(buf: Uint8Array): ResponseEnvelope {
  const resp: ResponseEnvelope = { payload: EMPTY };
  const r = new ProtoReader(buf, 0, buf.length);
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectWire(field, wire, WIRE_LEN);
      resp.status = decodeStatus(r.sub());
    } else if (field === 2) {
      expectWire(field, wire, WIRE_LEN);
      resp.payload = r.bytes();
    } else r.skip(wire);
  }
  return resp;
}

function decodeStatus(r: ProtoReader): RpcStatus {
  const st: RpcStatus = { code: 0, message: '', details: [] };
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expectWire(field, wire, WIRE_VARINT);
      // int32 on the wire is sign-extended to 64 bits; keep the low 32 bits, signed.
      const v = r.varint();
      st.code = Number(BigInt.asIntN(32, BigInt(v)));
    } else if (field === 2) {
      expectWire(field, wire, WIRE_LEN);
      st.message = r.string();
    } else if (field === 3) {
      expectWire(field, wire, WIRE_LEN);
      st.details.push(r.bytes());
    } else r.skip(wire);
  }
  return st;
}

// ---- encoding ----

function varintSize(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

function lenFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

/** Encoder over a buffer sized exactly beforehand. */
class ProtoWriter {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
  ) {
    this.pos = start;
  }

  varint(v: number): void {
    if (v < 0) {
      // Negative int64: two's complement, always 10 bytes.
      let u = BigInt.asUintN(64, BigInt(Math.trunc(v)));
      for (let i = 0; i < 9; i++) {
        this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
        u >>= 7n;
      }
      this.buf[this.pos++] = Number(u);
      return;
    }
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.buf[this.pos++] = (field << 3) | wire; // all our field numbers are < 16
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.varint(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  string(field: number, s: string, byteLength: number): void {
    this.tag(field, WIRE_LEN);
    this.varint(byteLength);
    this.pos += this.buf.write(s, this.pos, byteLength, 'utf8');
  }
}

export interface OutgoingRequest {
  service: string;
  method: string;
  payload?: Uint8Array;
  timeoutNano?: number;
  metadata?: readonly KeyValue[];
}

/**
 * Serializes a Request. `headroom` bytes are left free at the front so the caller can write
 * the frame header in place (one allocation per message).
 */
export function encodeRequest(req: OutgoingRequest, headroom = 0): Buffer {
  const serviceLen = Buffer.byteLength(req.service, 'utf8');
  const methodLen = Buffer.byteLength(req.method, 'utf8');
  const payload = req.payload ?? EMPTY;
  const timeout = Math.trunc(req.timeoutNano ?? 0);
  const metadata = req.metadata ?? [];
  const kvSizes: Array<[number, number, number]> = [];

  let size = 0;
  if (serviceLen > 0) size += lenFieldSize(serviceLen);
  if (methodLen > 0) size += lenFieldSize(methodLen);
  if (payload.length > 0) size += lenFieldSize(payload.length);
  if (timeout !== 0) size += 1 + varintSize(timeout);
  for (const kv of metadata) {
    const k = Buffer.byteLength(kv.key, 'utf8');
    const v = Buffer.byteLength(kv.value, 'utf8');
    const inner = (k > 0 ? lenFieldSize(k) : 0) + (v > 0 ? lenFieldSize(v) : 0);
    kvSizes.push([k, v, inner]);
    size += lenFieldSize(inner);
  }

  const w = new ProtoWriter(Buffer.allocUnsafe(headroom + size), headroom);
  if (serviceLen > 0) w.string(1, req.service, serviceLen);
  if (methodLen > 0) w.string(2, req.method, methodLen);
  if (payload.length > 0) w.bytes(3, payload);
  if (timeout !== 0) {
    w.tag(4, WIRE_VARINT);
    w.varint(timeout);
  }
  metadata.forEach((kv, i) => {
    const [k, v, inner] = kvSizes[i]!;
    w.tag(5, WIRE_LEN);
    w.varint(inner);
    if (k > 0) w.string(1, kv.key, k);
    if (v > 0) w.string(2, kv.value, v);
  });
  return w.buf;
}

export interface OutgoingResponse {
  status?: { code: number; message: string; details?: readonly Uint8Array[] };
  payload?: Uint8Array;
}

/** Serializes a Response; see encodeRequest for `headroom`. */
export function encodeResponse(resp: OutgoingResponse, headroom = 0): Buffer {
  const payload = resp.payload ?? EMPTY;
  const st = resp.status;
  let size = payload.length > 0 ? lenFieldSize(payload.length) : 0;
  let statusSize = 0;
  let messageLen = 0;
  const code = st ? st.code | 0 : 0;
  if (st) {
    messageLen = Buffer.byteLength(st.message, 'utf8');
    if (code !== 0) statusSize += 1 + varintSize(code);
    if (messageLen > 0) statusSize += lenFieldSize(messageLen);
    for (const d of st.details ?? []) statusSize += lenFieldSize(d.length);
    size += lenFieldSize(statusSize);
  }

  const w = new ProtoWriter(Buffer.allocUnsafe(headroom + size), headroom);
  if (st) {
    w.tag(1, WIRE_LEN);
    w.varint(statusSize);
    if (code !== 0) {
      w.tag(1, WIRE_VARINT);
      w.varint(code);
    }
    if (messageLen > 0) w.string(2, st.message, messageLen);
    for (const d of st.details ?? []) w.bytes(3, d);
  }
  if (payload.length > 0) w.bytes(2, payload);
  return w.buf;
}
