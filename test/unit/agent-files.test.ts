// Unit tests of the agent's file writers (atomic, only on change, generations) and small pure helpers (listen, backoff).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CONFLIST_NAME, SegmentsWriter, writeAtomic, writeConflist } from "../../lib/agent/files.ts";
import { parseListen } from "../../lib/agent/http.ts";
import { nextBackoff } from "../../lib/agent/watch.ts";
import { defaultNodeName } from "../../lib/agent/main.ts";

const tmp = () => mkdtempSync("/tmp/ovsp-agent-files-");

test("writeAtomic: writes, then nothing when the text is the same; no temporary file left", () => {
  const d = tmp();
  try {
    const p = join(d, "sub", "f.json");
    assert.ok(writeAtomic(p, "a\n"));
    const ino = statSync(p).ino;
    assert.not.ok(writeAtomic(p, "a\n"));
    assert.is(statSync(p).ino, ino);
    assert.ok(writeAtomic(p, "b\n"));
    assert.is.not(statSync(p).ino, ino, "replaced by rename, not rewritten in place");
    assert.is(readFileSync(p, "utf8"), "b\n");
    assert.equal(readdirSync(join(d, "sub")), ["f.json"]);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("writeConflist: marked as the agent's", () => {
  const d = tmp();
  try {
    assert.ok(writeConflist(d, { cniVersion: "1.0.0", name: "n", plugins: [] }));
    const c = JSON.parse(readFileSync(join(d, CONFLIST_NAME), "utf8"));
    assert.is(c["ovsplane.dev/managed-by"], "ovsplane-agent");
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("SegmentsWriter: generation bumps on change only, continues from the file, rewrites a lost file", () => {
  const d = tmp();
  try {
    const w = new SegmentsWriter(d);
    assert.is(w.generation, 0);
    assert.ok(w.write({ default: 1 }));
    assert.not.ok(w.write({ default: 1 }));
    assert.ok(w.write({ default: 1, x: 100 }));
    assert.equal(JSON.parse(readFileSync(w.path, "utf8")), { namespaces: { default: 1, x: 100 }, generation: 2 });
    const again = new SegmentsWriter(d);
    assert.is(again.generation, 2);
    assert.not.ok(again.write({ default: 1, x: 100 }));
    assert.ok(again.write({ default: 1 }));
    assert.is(again.generation, 3);
    rmSync(again.path);
    assert.ok(again.write({ default: 1 }), "a deleted file is written again");
    assert.is(again.generation, 3);
    writeFileSync(w.path, "garbage");
    assert.is(new SegmentsWriter(d).generation, 0);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("parseListen: HOST:PORT, [v6]:PORT, bad values", () => {
  assert.equal(parseListen("127.0.0.1:9109"), { host: "127.0.0.1", port: 9109 });
  assert.equal(parseListen("[::1]:80"), { host: "::1", port: 80 });
  assert.equal(parseListen(":9109"), { host: "", port: 9109 });
  assert.throws(() => parseListen("9109"), /HOST:PORT/);
  assert.throws(() => parseListen("h:99999"), /HOST:PORT/);
});

test("nextBackoff: doubles up to the cap", () => {
  assert.is(nextBackoff(200, 200, 5000), 400);
  assert.is(nextBackoff(4000, 200, 5000), 5000);
  assert.is(nextBackoff(0, 200, 5000), 200);
});

test("defaultNodeName: $NODE_NAME, else the hostname", () => {
  assert.is(defaultNodeName({ NODE_NAME: "w1" }), "w1");
  assert.ok(defaultNodeName({}).length > 0);
});

test.run();
