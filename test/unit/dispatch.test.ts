// Unit tests of dispatch(): output per command and version, the error JSON and exit code, debug output; no process I/O.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CniError, stepFailed } from "../../lib/cni/errors.ts";
import { dispatch } from "../../lib/cni/skel.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../../lib/cni/version.ts";
import type { CniRequest, Plugin, Result } from "../../lib/cni/types.ts";
import { settingsFromEnv } from "../../lib/settings.ts";
import { CNI_ENV as ENV, confText as stdin } from "./helpers.ts";

interface Captured {
  stdout: string;
  stderr: string;
  exitCode: number | string | undefined;
}

/** Dispatches with captured output; OVSPLANE_DEBUG in env is read the way the entries read it. */
async function run(plugin: Plugin, env: Record<string, string | undefined>, input?: string, knownArgs?: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  let exitCode: Captured["exitCode"] = 0;
  await dispatch(plugin, {
    about: "ovsplane test",
    env,
    debug: settingsFromEnv(env).debug,
    stdout: (s) => void out.push(s),
    stderr: (s) => void err.push(s),
    exit: (code) => void (exitCode = code),
    ...(input === undefined ? {} : { stdin: input }),
    ...(knownArgs ? { knownArgs } : {}),
  });
  return { stdout: out.join(""), stderr: err.join(""), exitCode };
}

const RESULT: Result = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "ovsp0123456789a", mac: "0a:00:00:00:00:01" }, { name: "eth0", mac: "0a:58:0a:f4:01:05", mtu: 1450, sandbox: "/var/run/netns/p1" }],
  ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 1 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
  dns: {},
};

function fakePlugin(over: Partial<Plugin> = {}): Plugin & { calls: CniRequest[] } {
  const calls: CniRequest[] = [];
  return {
    calls,
    add: async (r) => (calls.push(r), structuredClone(RESULT)),
    del: async (r) => void calls.push(r),
    check: async (r) => void calls.push(r),
    gc: async (r) => void calls.push(r),
    status: async (r) => void calls.push(r),
    ...over,
  };
}

test("dispatch: VERSION prints the current and supported versions", async () => {
  const p = fakePlugin();
  const c = await run(p, { CNI_COMMAND: "VERSION" }, "not even json");
  assert.equal(JSON.parse(c.stdout), { cniVersion: CURRENT_VERSION, supportedVersions: [...SUPPORTED_VERSIONS] });
  assert.is(c.stdout.endsWith("\n"), true);
  assert.is(c.exitCode, 0);
  assert.is(p.calls.length, 0);
});

test("dispatch: no CNI_COMMAND prints the about text to stderr only", async () => {
  const c = await run(fakePlugin(), {}, "");
  assert.is(c.stdout, "");
  assert.ok(c.stderr.includes("ovsplane test"));
  assert.ok(c.stderr.includes("1.1.0"));
  assert.is(c.exitCode, 0);
});

test("dispatch: ADD result in the requested version", async () => {
  const p = fakePlugin();
  const c = await run(p, { ...ENV, CNI_COMMAND: "ADD" }, stdin({ cniVersion: "0.4.0" }));
  assert.is(c.exitCode, 0);
  assert.equal(JSON.parse(c.stdout), {
    cniVersion: "0.4.0",
    interfaces: [{ name: "ovsp0123456789a", mac: "0a:00:00:00:00:01" }, { name: "eth0", mac: "0a:58:0a:f4:01:05", sandbox: "/var/run/netns/p1" }],
    ips: [{ version: "4", address: "10.244.1.5/24", gateway: "10.244.1.1", interface: 1 }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
    dns: {},
  });
  assert.is(p.calls.length, 1);
  assert.is(p.calls[0]!.command, "ADD");
  const c1 = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "ADD" }, stdin({ cniVersion: "1.0.0" }));
  assert.equal(JSON.parse(c1.stdout), { ...RESULT, cniVersion: "1.0.0" });
  const c0 = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "ADD" }, stdin({ cniVersion: "0.2.0" }));
  assert.equal(JSON.parse(c0.stdout), {
    cniVersion: "0.2.0",
    ip4: { ip: "10.244.1.5/24", gateway: "10.244.1.1", routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }] },
    dns: {},
  });
});

test("dispatch: DEL, CHECK, GC and STATUS print nothing on success", async () => {
  for (const cmd of ["DEL", "CHECK", "GC", "STATUS"]) {
    const p = fakePlugin();
    const c = await run(p, { ...ENV, CNI_COMMAND: cmd }, stdin());
    assert.is(c.stdout, "", cmd);
    assert.is(c.exitCode, 0, cmd);
    assert.is(p.calls[0]!.command, cmd);
  }
});

test("dispatch: known args are passed through options", async () => {
  const p = fakePlugin();
  const c = await run(p, { ...ENV, CNI_COMMAND: "ADD", CNI_ARGS: "OVSPLANE_SEGMENT=7" }, stdin(), ["OVSPLANE_SEGMENT"]);
  assert.is(c.exitCode, 0, c.stdout);
  assert.is(p.calls[0]!.args.OVSPLANE_SEGMENT, "7");
});

test("dispatch: a CniError becomes {cniVersion, code, msg, details} with exit 1", async () => {
  const p = fakePlugin({
    del: async () => {
      throw new CniError(11, "OVSDB is not available, try again later: refused", "dial unix: refused");
    },
  });
  const c = await run(p, { ...ENV, CNI_COMMAND: "DEL" }, stdin({ cniVersion: "0.4.0" }));
  assert.is(c.exitCode, 1);
  assert.equal(JSON.parse(c.stdout), { cniVersion: "0.4.0", code: 11, msg: "OVSDB is not available, try again later: refused", details: "dial unix: refused" });
});

test("dispatch: a bad request is an error JSON without details when there are none", async () => {
  const c = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "ADD", CNI_IFNAME: "x/y" }, stdin());
  assert.is(c.exitCode, 1);
  const e = JSON.parse(c.stdout);
  assert.equal(Object.keys(e).sort(), ["cniVersion", "code", "msg"]);
  assert.is(e.cniVersion, "1.1.0");
  assert.is(e.code, 4);
  assert.ok(e.msg.includes("CNI_IFNAME"));
});

test("dispatch: an unsupported version answers in the current version with the list", async () => {
  const c = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "ADD" }, stdin({ cniVersion: "9.9.9" }));
  assert.is(c.exitCode, 1);
  const e = JSON.parse(c.stdout);
  assert.is(e.cniVersion, CURRENT_VERSION);
  assert.is(e.code, 1);
  assert.ok(e.details.includes("0.1.0") && e.details.includes("1.1.0"));
});

test("dispatch: bad JSON is code 6; an unknown command is code 4", async () => {
  const c = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "ADD" }, "{");
  assert.is(c.exitCode, 1);
  assert.is(JSON.parse(c.stdout).code, 6);
  const u = await run(fakePlugin(), { ...ENV, CNI_COMMAND: "FROB" }, stdin());
  assert.is(u.exitCode, 1);
  const e = JSON.parse(u.stdout);
  assert.is(e.code, 4);
  assert.ok(e.msg.includes("CNI_COMMAND"));
});

test("dispatch: a plain Error becomes code 100 with no stack trace in stdout", async () => {
  const p = fakePlugin({
    add: async () => {
      throw new Error("boom");
    },
  });
  const c = await run(p, { ...ENV, CNI_COMMAND: "ADD" }, stdin({ cniVersion: "1.0.0" }));
  assert.is(c.exitCode, 1);
  assert.is(c.stdout.trim().split("\n").length, 1, "one line of JSON");
  const e = JSON.parse(c.stdout);
  assert.equal(e, { cniVersion: "1.0.0", code: 100, msg: "unexpected error: boom" });
  assert.not.ok(c.stdout.includes("    at "), "no stack in stdout");
  assert.not.ok(c.stderr.includes("    at "), "no stack without OVSPLANE_DEBUG");
  const d = await run(p, { ...ENV, CNI_COMMAND: "ADD", OVSPLANE_DEBUG: "1" }, stdin());
  assert.ok(d.stderr.includes("boom"), "stack on stderr with OVSPLANE_DEBUG");
  assert.not.ok(d.stdout.includes("    at "));
});

test("dispatch: a thrown non-Error is code 100 too", async () => {
  const p = fakePlugin({
    status: async () => {
      throw "just a string";
    },
  });
  const c = await run(p, { CNI_COMMAND: "STATUS" }, stdin());
  assert.is(c.exitCode, 1);
  assert.equal(JSON.parse(c.stdout), { cniVersion: "1.1.0", code: 100, msg: "unexpected error: just a string" });
});

test("dispatch: with OVSPLANE_DEBUG the cause chain follows the stack", async () => {
  const inner = new Error("ovs-vsctl: exit 1: no bridge");
  const p = fakePlugin({
    add: async () => {
      throw stepFailed("adding the OVS port", inner);
    },
  });
  const c = await run(p, { ...ENV, CNI_COMMAND: "ADD" }, stdin());
  assert.equal(JSON.parse(c.stdout), { cniVersion: "1.1.0", code: 100, msg: "adding the OVS port: ovs-vsctl: exit 1: no bridge" });
  assert.is(c.stderr, "");
  const d = await run(p, { ...ENV, CNI_COMMAND: "ADD", OVSPLANE_DEBUG: "1" }, stdin());
  assert.is(d.stdout, c.stdout, "the error JSON does not change");
  assert.ok(d.stderr.startsWith("CniError: adding the OVS port"), d.stderr);
  assert.ok(d.stderr.includes("\ncaused by: Error: ovs-vsctl: exit 1: no bridge\n"), d.stderr);
});

test("dispatch: the exit code goes through the injected output, never process.exitCode", () => {
  assert.is(process.exitCode ?? 0, 0);
});

test.run();
