/**
 * A tiny protobuf writer for the Kata wire tests, independent of the generated code: the
 * expected bytes are built field by field from upstream's tag numbers, the way Kata's Go
 * runtime (gogo/golang protobuf) lays them out: fields in number order, zero values left
 * out, repeated scalars packed, map entries as {1: key, 2: value}.
 */
export type Bytes = Buffer;

export function varint(value: number | bigint): Bytes {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

const key = (field: number, wireType: number): Bytes => varint((field << 3) | wireType);

/** varint field (int32/int64/uint32/uint64/bool/enum) */
export function vi(field: number, value: number | bigint | boolean): Bytes {
  return Buffer.concat([key(field, 0), varint(typeof value === 'boolean' ? (value ? 1 : 0) : value)]);
}

/** length-delimited field: string, bytes or an embedded message */
export function ld(field: number, value: string | Uint8Array): Bytes {
  const body = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([key(field, 2), varint(body.length), body]);
}

/** embedded message from its fields */
export function msg(field: number, ...fields: Bytes[]): Bytes {
  return ld(field, Buffer.concat(fields));
}

/** packed repeated varints */
export function packed(field: number, values: Array<number | bigint>): Bytes {
  return ld(field, Buffer.concat(values.map((v) => varint(v))));
}

/** repeated string field */
export function strs(field: number, values: string[]): Bytes {
  return Buffer.concat(values.map((v) => ld(field, v)));
}

/** map<string, string> entries */
export function strMap(field: number, entries: Record<string, string>): Bytes {
  return Buffer.concat(Object.entries(entries).map(([k, v]) => msg(field, ld(1, k), ld(2, v))));
}

export const cat = (...parts: Bytes[]): Bytes => Buffer.concat(parts);
export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
