// Unit tests of the CNI call log: step recorder, record and line format, size cap and rotation, the dispatcher's observer.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { dispatch, type DispatchOutcome } from "../../lib/cni/skel.ts";
import { CniError } from "../../lib/cni/errors.ts";
import type { Plugin } from "../../lib/cni/types.ts";
import { appendLine, calls, DEFAULT_LOG_FILE, formatRecord, LOG_MAX_LINE, logCall, logFileOf, recordOf } from "../../lib/plugin/calllog.ts";
import { CNI_ENV, confText } from "./helpers.ts";
import { diagnostics } from "../../lib/cni/stdio.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("the recorder times each step until the next one, adding up repeated names", async () => {
  calls.start();
  calls.step("a");
  await sleep(20);
  calls.step("b");
  await sleep(5);
  calls.step("a");
  await sleep(5);
  const s = calls.end();
  assert.equal(Object.keys(s), ["a", "b"]);
  assert.ok(s.a! >= 20 && s.a! < 200, String(s.a));
  assert.ok(s.b! >= 4, String(s.b));
  calls.start();
  assert.equal(calls.end(), {});
});

test("logFile: a path, \"\" for none, anything else the default", () => {
  assert.is(logFileOf({ logFile: "/tmp/x.log" }), "/tmp/x.log");
  assert.is(logFileOf({ logFile: "" }), undefined);
  assert.is(logFileOf({}), DEFAULT_LOG_FILE);
  assert.is(logFileOf({ logFile: 3 }), DEFAULT_LOG_FILE);
  assert.is(logFileOf({ logFile: "relative" }), DEFAULT_LOG_FILE);
});

test("a record: pod from CNI_ARGS, IPs of the result or the error's code and message", () => {
  const env = { CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/p", CNI_IFNAME: "eth0", CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0" };
  const ok = recordOf({ command: "ADD", env, conf: { name: "podnet" }, result: { ips: [{ address: "10.244.1.2/24" }] }, durationMs: 12.345 }, { IPAM: 1.2 }, new Date(0));
  assert.equal(ok, {
    time: "1970-01-01T00:00:00.000Z", command: "ADD", ok: true, ms: 12.3, steps: { IPAM: 1.2 },
    network: "podnet", containerID: "c1", netns: "/var/run/netns/p", ifname: "eth0", pod: "default/web-0", ips: ["10.244.1.2/24"],
  });
  const bad = recordOf({ command: "ADD", env: {}, conf: { name: "n" }, error: { code: 4, msg: "bad netns", details: "x" }, durationMs: 1 }, {});
  assert.is(bad.ok, false);
  assert.is(bad.code, 4);
  assert.is(bad.msg, "bad netns: x");
  assert.is(bad.pod, undefined);
});

test("a line is one JSON document below the size limit, even with a huge message", () => {
  const r = recordOf({ command: "DEL", env: { CNI_NETNS: "/n".repeat(3000) }, conf: { name: "n" }, error: { code: 100, msg: "m".repeat(20_000) }, durationMs: 1 }, {});
  const line = formatRecord(r);
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.ok(Buffer.byteLength(line) < LOG_MAX_LINE, String(line.length));
  assert.is(JSON.parse(line).code, 100);
});

test("appendLine creates the directory, appends, and rotates to .1 past the cap", () => {
  const dir = mkdtempSync(join(tmpdir(), "calllog-"));
  try {
    const file = join(dir, "sub", "cni.log");
    appendLine(file, "one\n", 10);
    appendLine(file, "two\n", 10);
    assert.is(readFileSync(file, "utf8"), "one\ntwo\n");
    appendLine(file, "three\n", 10);
    assert.is(readFileSync(`${file}.1`, "utf8"), "one\ntwo\n");
    assert.is(readFileSync(file, "utf8"), "three\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the dispatcher's observer sees every command but VERSION; logCall writes one line; a log failure never fails the call", async () => {
  const dir = mkdtempSync(join(tmpdir(), "calllog-"));
  try {
    const file = join(dir, "cni.log");
    const plugin: Plugin = {
      add: async () => ({ cniVersion: "1.1.0", ips: [{ address: "10.1.0.2/24" }] }),
      del: async () => { throw new CniError(11, "try later"); },
      check: async () => undefined, gc: async () => undefined, status: async () => undefined,
    };
    const seen: DispatchOutcome[] = [];
    const out: string[] = [];
    const stdin = confText({ logFile: file });
    const run = (cmd: string, onDone: (o: DispatchOutcome) => void) =>
      dispatch(plugin, { about: "t", env: { ...CNI_ENV, CNI_COMMAND: cmd }, stdin, builtinIpam: ["ovsplane-ipam"], stdout: (s) => out.push(s), exit: () => undefined, onDone });
    await run("VERSION", (o) => seen.push(o));
    assert.is(seen.length, 0);
    await run("ADD", (o) => { seen.push(o); logCall(o); });
    await run("DEL", (o) => { seen.push(o); logCall(o); });
    assert.equal(seen.map((o) => o.command), ["ADD", "DEL"]);
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.map((l) => [l.command, l.ok, l.code]), [["ADD", true, undefined], ["DEL", false, 11]]);
    assert.equal(lines[0].ips, ["10.1.0.2/24"]);
    // A log file that cannot be written: the call still answers.
    writeFileSync(join(dir, "blocker"), "");
    const errs: string[] = [];
    const orig = diagnostics.write;
    diagnostics.write = (s: string) => void errs.push(s);
    try {
      await dispatch(plugin, { about: "t", env: { ...CNI_ENV, CNI_COMMAND: "ADD" }, stdin: confText({ logFile: join(dir, "blocker", "x.log") }), builtinIpam: ["ovsplane-ipam"], stdout: (s) => out.push(s), exit: () => undefined, onDone: logCall });
    } finally {
      diagnostics.write = orig;
    }
    assert.ok(JSON.parse(out[out.length - 1]!).ips, out[out.length - 1]);
    assert.match(errs.join(""), /cannot write the call log/);
    assert.not.ok(existsSync(join(dir, "blocker", "x.log")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
