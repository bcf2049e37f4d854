/**
 * Just enough of the protobuf wire format to write the gate's answers: fields
 * built once into Buffers (`varintField`, `stringField`, `messageField`), and a
 * writer that fills one exactly-sized Buffer per call from those pieces and the
 * few strings that change per request. Sizes are computed before writing, so a
 * call allocates one Buffer and nothing else.
 */
import { WIRE_LEN, WIRE_VARINT } from './reader.js';

/** Bytes of `n` (a non-negative integer below 2^32) as a varint. */
export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/**
 * UTF-8 length of `s`. Everything the gate writes per call (addresses, plugin
 * ids, decision ids, numbers) is ASCII, where this is the length; anything else
 * is measured the way Buffer.write will encode it (a lone surrogate as U+FFFD).
 */
export function utf8Size(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Bytes of a length-delimited field (tag below 16, so one byte) whose payload is `n` bytes. */
export function lenFieldSize(n: number): number {
  return 1 + varintSize(n) + n;
}

export class WireWriter {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint(n: number): void {
    const buf = this.buf;
    let pos = this.pos;
    while (n >= 0x80) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 0x80);
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  /** Tag and length of a length-delimited field; the payload follows. */
  lenHeader(field: number, n: number): void {
    this.buf[this.pos++] = (field << 3) | WIRE_LEN;
    this.varint(n);
  }

  raw(bytes: Uint8Array): void {
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** `s`, whose UTF-8 length (utf8Size) is `n`. */
  string(s: string, n: number): void {
    const buf = this.buf;
    if (n === s.length) {
      let pos = this.pos;
      for (let i = 0; i < n; i++) buf[pos++] = s.charCodeAt(i);
      this.pos = pos;
    } else {
      this.pos += buf.write(s, this.pos, n, 'utf8');
    }
  }

  /** The filled Buffer; a size computed wrongly is a bug, caught here rather than sent. */
  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`wire writer: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

/** A varint field, for the parts built once. */
export function varintField(field: number, value: number): Buffer {
  const w = new WireWriter(1 + varintSize(value));
  w.buf[w.pos++] = (field << 3) | WIRE_VARINT;
  w.varint(value);
  return w.done();
}

/** A length-delimited field holding the concatenation of `parts`, for the parts built once. */
export function messageField(field: number, ...parts: readonly Uint8Array[]): Buffer {
  let n = 0;
  for (const p of parts) n += p.length;
  const w = new WireWriter(lenFieldSize(n));
  w.lenHeader(field, n);
  for (const p of parts) w.raw(p);
  return w.done();
}

/** A string field, for the parts built once. */
export function stringField(field: number, s: string): Buffer {
  return messageField(field, Buffer.from(s, 'utf8'));
}
