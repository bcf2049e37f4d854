/**
 * Protobuf wire bytes written by hand, for inputs no encoder produces: fields
 * out of order, given twice, unknown numbers of every wire type, wrong wire
 * types, groups, truncations. Independent of the gate's codec and of protobufjs.
 */

export function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

export function tag(field: number, wireType: number): Buffer {
  return varint(field * 8 + wireType);
}

/** A length-delimited field holding the concatenation of `parts` (strings as UTF-8). */
export function len(field: number, ...parts: readonly (Buffer | string)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  return Buffer.concat([tag(field, 2), varint(body.length), body]);
}

export function varintField(field: number, value: number | bigint): Buffer {
  return Buffer.concat([tag(field, 0), varint(value)]);
}

export function fixed64(field: number, value = 0x0102030405060708n): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(value);
  return Buffer.concat([tag(field, 1), b]);
}

export function fixed32(field: number, value = 0x01020304): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return Buffer.concat([tag(field, 5), b]);
}

/** A packed repeated varint field. */
export function packed(field: number, values: readonly number[]): Buffer {
  return len(field, Buffer.concat(values.map((v) => varint(v))));
}

/** One unknown field of each wire type (varint, 64-bit, length-delimited, 32-bit) plus packed and unpacked repeated scalars. */
export function unknownFields(base: number): Buffer {
  return Buffer.concat([
    varintField(base, 150),
    varintField(base + 1, -1),
    fixed64(base + 2),
    len(base + 3, 'skipped \u00e9', Buffer.from([0xff, 0x00])),
    fixed32(base + 4),
    packed(base + 5, [1, 300, 70000, 2 ** 31]),
    varintField(base + 6, 1),
    varintField(base + 6, 2),
    varintField(base + 6, 3),
  ]);
}

/** map<string,string> entry as field `field`. */
export function entry(field: number, key: string | undefined, value: string | undefined, ...extra: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  if (key !== undefined) parts.push(len(1, key));
  if (value !== undefined) parts.push(len(2, value));
  return len(field, ...parts, ...extra);
}
