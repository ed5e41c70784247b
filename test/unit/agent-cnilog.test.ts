// Unit tests of the agent's CNI call log follower: line parsing, line splitting, following from the end across rotation.
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { LogFollower, parseCallLine, splitLines } from "../../lib/agent/cnilog.ts";
import { formatRecord, recordOf } from "../../lib/plugin/calllog.ts";

test("parseCallLine: a record the plugin writes gives command, result and seconds", () => {
  const ok = formatRecord(recordOf({ command: "ADD", env: {}, conf: { name: "n" }, durationMs: 125 }, {}));
  assert.equal(parseCallLine(ok.trim()), { command: "ADD", result: "ok", seconds: 0.125 });
  const err = formatRecord(recordOf({ command: "DEL", env: {}, durationMs: 5, error: { code: 11, msg: "x" } }, {}));
  assert.equal(parseCallLine(err.trim()), { command: "DEL", result: "error", seconds: 0.005 });
});

test("parseCallLine: not JSON, unknown command, missing or bad ms: nothing", () => {
  for (const l of ["", "{", "null", "[]", '{"command":"VERSION","ok":true,"ms":1}', '{"command":"ADD","ok":true}', '{"command":"ADD","ms":-1}', '{"command":"ADD","ms":"3"}']) {
    assert.is(parseCallLine(l), undefined, l);
  }
  assert.equal(parseCallLine('{"command":"GC","ms":0}'), { command: "GC", result: "error", seconds: 0 }, "ok missing = error");
});

test("splitLines: complete lines out, the unfinished tail kept, blank lines dropped", () => {
  assert.equal(splitLines("a\nb\n\nc"), { lines: ["a", "b"], rest: "c" });
  assert.equal(splitLines("partial"), { lines: [], rest: "partial" });
  assert.equal(splitLines("x\n"), { lines: ["x"], rest: "" });
});

test("LogFollower: starts at the end, reads appended lines (a split line once whole), survives rotation and a late file", () => {
  const d = mkdtempSync("/tmp/ovsp-cnilog-");
  try {
    const f = join(d, "cni.log");
    writeFileSync(f, "old1\nold2\n");
    const got: string[] = [];
    const fl = new LogFollower(f, (l) => got.push(l));
    fl.poll();
    assert.equal(got, [], "what was there before is not read");
    appendFileSync(f, "a\nb");
    fl.poll();
    assert.equal(got, ["a"]);
    appendFileSync(f, "c\n");
    fl.poll();
    assert.equal(got, ["a", "bc"]);
    appendFileSync(f, "last-of-old\n");
    renameSync(f, `${f}.1`);
    writeFileSync(f, "new1\n");
    fl.poll();
    assert.equal(got, ["a", "bc", "last-of-old", "new1"], "the old file's rest, then the new file from its start");
    const late = join(d, "late.log");
    const got2: string[] = [];
    const fl2 = new LogFollower(late, (l) => got2.push(l));
    fl2.poll();
    writeFileSync(late, "first\n");
    fl2.poll();
    assert.equal(got2, ["first"], "a file created after the start is read whole");
    fl.stop();
    fl2.stop();
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test.run();
