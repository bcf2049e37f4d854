import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WireReader } from './reader.js';
import { WireWriter, utf8Size, varintSize } from './writer.js';

describe('wire writer', () => {
  it('varintSize matches what varint writes, at every byte boundary, and the reader reads it back', () => {
    for (const n of [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff, 0x10000000, 0xffffffff]) {
      const w = new WireWriter(varintSize(n));
      w.varint(n);
      const out = w.done();
      const r = new WireReader(out);
      assert.equal(r.varint(out.length), n);
      assert.equal(r.pos, out.length);
    }
  });

  it('utf8Size is the length Buffer.write encodes, lone surrogates included', () => {
    for (const s of ['', 'ascii', 'caf\u00e9', '\u4e2d', '\u{1F600}', '\ud800', 'a\udc00b', '\ud83d']) {
      assert.equal(utf8Size(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
      const w = new WireWriter(utf8Size(s));
      w.string(s, utf8Size(s));
      assert.deepEqual(w.done(), Buffer.from(s, 'utf8'));
    }
  });

  it('a size computed wrongly fails instead of sending a short message', () => {
    const w = new WireWriter(3);
    w.varint(1);
    assert.throws(() => w.done(), /wrote 1 of 3 bytes/);
  });
});
