/**
 * Just enough of the protobuf wire format to walk a message and skip what the
 * gate does not read: varints, tags, length-delimited ranges, and skipping by
 * wire type. Nothing is decoded that the caller does not ask for, so an
 * ignored field costs a bounds check, not an object.
 *
 * Malformed input throws a GateError (`invalid_request`): a varint longer than
 * ten bytes, a length running past its message, a group (wire types 3 and 4:
 * proto2 only, never in Envoy's proto3 API, and the one case where skipping
 * would mean parsing), or a wire type that does not exist (6, 7).
 */
import { GateError } from '../../../core/errors.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** 2^32: varints past it are no valid tag or length. */
const TWO_32 = 4294967296;

export class WireReader {
  pos = 0;

  constructor(readonly buf: Uint8Array) {}

  /**
   * A varint as a non-negative number. Exact up to 2^53, which covers every tag
   * and length this reader accepts; larger values are only ever compared
   * against a bound they already exceed.
   */
  varint(end: number): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= end) throw truncated('varint');
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let value = b & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 10; i++) {
      if (pos >= end) throw truncated('varint');
      b = buf[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.pos = pos;
        return value;
      }
      scale *= 0x80;
    }
    throw new GateError('invalid_request', 'malformed protobuf: varint longer than 10 bytes');
  }

  /** A field tag; 0 when `end` is reached. Field number 0 and tags past 2^32 are errors. */
  tag(end: number): number {
    if (this.pos >= end) return 0;
    const t = this.varint(end);
    if (t < 8 || t >= TWO_32) throw new GateError('invalid_request', `malformed protobuf: invalid tag ${t}`);
    return t;
  }

  /** The end offset of the length-delimited field whose length prefix is next; the reader moves to its start. */
  lenEnd(end: number): number {
    const n = this.varint(end);
    if (n > end - this.pos) throw truncated(`length ${n}`);
    return this.pos + n;
  }

  /** Skips the value of a field with tag `t` (its tag already read). */
  skip(t: number, end: number): void {
    switch (t & 7) {
      case WIRE_VARINT:
        this.varint(end);
        return;
      case WIRE_I64:
        this.advance(8, end);
        return;
      case WIRE_LEN:
        this.pos = this.lenEnd(end);
        return;
      case WIRE_I32:
        this.advance(4, end);
        return;
      case 3:
      case 4:
        throw new GateError('invalid_request', `malformed protobuf: group (wire type ${t & 7}) in field ${Math.floor(t / 8)}`);
      default:
        throw new GateError('invalid_request', `malformed protobuf: wire type ${t & 7} in field ${Math.floor(t / 8)}`);
    }
  }

  private advance(n: number, end: number): void {
    if (n > end - this.pos) throw truncated(`fixed${n * 8}`);
    this.pos += n;
  }
}

function truncated(what: string): GateError {
  return new GateError('invalid_request', `malformed protobuf: ${what} runs past the end of its message`);
}
