// Unit tests of the JSON stream splitter: values cut at every byte position, UTF-8, escapes, junk.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { JsonSplitter } from "../../lib/ovs/jsonstream.ts";

const values: unknown[] = [
  { id: 1, result: [{ rows: [{ name: "br-int", external_ids: ["map", [["k", "v"]]] }] }], error: null },
  { method: "echo", params: [], id: "echo" },
  { s: 'quote " brace { bracket [ ] } backslash \\ slash / ', t: "\\", u: "\\\"" },
  { utf8: "é ü 中文 🙂 \u2028", nested: [[[{}]], [], {}], n: -1.5e3, b: [true, false, null] },
  [1, "]", "}", { a: "[" }],
];
const text = values.map((v) => JSON.stringify(v)).join("") + " \n" + JSON.stringify(values[0], null, 2) + "\r\n\t";
const expected = [...values, values[0]];
const bytes = Buffer.from(text, "utf8");

function feed(chunks: Buffer[]): unknown[] {
  const s = new JsonSplitter();
  const out: unknown[] = [];
  for (const c of chunks) for (const t of s.push(c)) out.push(JSON.parse(t));
  assert.is(s.buffered, 0);
  return out;
}

test("whole stream at once", () => {
  assert.equal(feed([bytes]), expected);
});

test("cut at every byte position (two chunks)", () => {
  for (let i = 0; i <= bytes.length; i++) {
    assert.equal(feed([bytes.subarray(0, i), bytes.subarray(i)]), expected, `cut at ${i}`);
  }
});

test("cut at every pair of positions (three chunks)", () => {
  for (let i = 0; i <= bytes.length; i += 3) {
    for (let j = i; j <= bytes.length; j++) {
      assert.equal(feed([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]), expected, `cut at ${i},${j}`);
    }
  }
});

test("one byte at a time, from a reused buffer", () => {
  const s = new JsonSplitter();
  const out: unknown[] = [];
  const scratch = Buffer.alloc(1);
  for (const b of bytes) {
    scratch[0] = b;
    for (const t of s.push(scratch)) out.push(JSON.parse(t));
  }
  assert.equal(out, expected);
});

test("plain Uint8Array chunks", () => {
  const u = new Uint8Array(bytes);
  const s = new JsonSplitter();
  const out = [...s.push(u.subarray(0, 7)), ...s.push(u.subarray(7))].map((t) => JSON.parse(t));
  assert.equal(out, expected);
});

test("an incomplete value is held back", () => {
  const s = new JsonSplitter();
  assert.equal(s.push(Buffer.from('{"a": "}')), []);
  assert.ok(s.buffered > 0);
  assert.equal(s.push(Buffer.from('"}')), ['{"a": "}"}']);
});

test("junk between values throws", () => {
  assert.throws(() => new JsonSplitter().push(Buffer.from('{"a":1} x')), /unexpected byte/);
  assert.throws(() => new JsonSplitter().push(Buffer.from("42")), /unexpected byte/);
});

test("a value over maxBytes throws", () => {
  const s = new JsonSplitter(16);
  assert.throws(() => s.push(Buffer.from('{"a": "0123456789abcdef"')), /longer than 16 bytes/);
});

test.run();
