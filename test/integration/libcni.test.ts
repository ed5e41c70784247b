// The libcni driver (runtime stand-in) drives Debian's bridge + host-local plugins inside a simulated node.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { createNode, createPod, runDriver, teardownAll, DRIVER_BIN, REPO_ROOT, type SimNode, type SimPod } from "../harness/testbed.ts";

const REF = "/usr/lib/cni";
let node: SimNode;
let pod: SimPod;
let dataDir: string;

function conflist(): object {
  return {
    cniVersion: "1.0.0",
    name: "refnet",
    plugins: [{
      type: "bridge", bridge: "cni0", isGateway: true, ipMasq: false,
      ipam: { type: "host-local", ranges: [[{ subnet: "10.244.9.0/24" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir },
      capabilities: { ips: true },
    }],
  };
}

test.before(async () => {
  try {
    await run(["bash", join(REPO_ROOT, "scripts/build-libcni-driver.sh")], { timeoutMs: 300_000 });
    node = await createNode({ name: "lc", underlayIP: "198.18.0.9" });
    dataDir = join(node.runDir, "ipam");
  } catch (e) {
    console.error("libcni.test setup failed:", e); // uvu 0.5 swallows errors thrown by hooks
    throw e;
  }
});

test.after(async () => {
  await teardownAll();
});

test("the driver and the reference plugins are there", () => {
  assert.ok(existsSync(DRIVER_BIN), DRIVER_BIN);
  assert.ok(existsSync(join(REF, "bridge")) && existsSync(join(REF, "host-local")), "containernetworking-plugins");
});

test("ADD gives the pod an address on a bridge of the node; CHECK passes; DEL cleans up", async () => {
  pod = await createPod("lc1");
  const add = await runDriver({ node, command: "add", conflist: conflist(), containerID: "ctr1", netns: pod, path: [REF] });
  assert.is(add.code, 0, add.stderr);
  assert.is(add.json.cniVersion, "1.0.0");
  const ip = add.json.ips[0].address as string;
  assert.match(ip, /^10\.244\.9\.\d+\/24$/);
  assert.equal(await pod.addresses("eth0"), [ip]);
  const sandbox = add.json.interfaces.find((i: any) => i.sandbox);
  assert.is(sandbox.sandbox, pod.netnsPath);
  // The bridge lives in the node's netns, not on the host.
  assert.is((await node.exec(["ip", "link", "show", "cni0"], { allowFail: true })).code, 0);
  assert.is((await run(["ip", "link", "show", "cni0"], { allowFail: true })).code !== 0, true, "host has no cni0");
  assert.ok(await pod.ping("10.244.9.1"), "pod reaches its gateway on the node");
  assert.ok(readdirSync(join(dataDir, "refnet")).includes(ip.split("/")[0]!), "lease file");

  const check = await runDriver({ node, command: "check", conflist: conflist(), containerID: "ctr1", netns: pod, path: [REF] });
  assert.is(check.code, 0, check.stderr);

  // CHECK sees the cached prevResult: breaking the pod's address makes it fail.
  await pod.exec(["ip", "addr", "del", ip, "dev", "eth0"]);
  const bad = await runDriver({ node, command: "check", conflist: conflist(), containerID: "ctr1", netns: pod, path: [REF] });
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /CHECK/);

  const del = await runDriver({ node, command: "del", conflist: conflist(), containerID: "ctr1", netns: pod, path: [REF] });
  assert.is(del.code, 0, del.stderr);
  assert.is((await pod.exec(["ip", "link", "show", "eth0"], { allowFail: true })).code !== 0, true, "eth0 removed");
  assert.not.ok(readdirSync(join(dataDir, "refnet")).includes(ip.split("/")[0]!), "lease released");
  const again = await runDriver({ node, command: "del", conflist: conflist(), containerID: "ctr1", netns: pod, path: [REF] });
  assert.is(again.code, 0, again.stderr);
});

test("CAP_ARGS and CNI_ARGS reach the plugins", async () => {
  const p = await createPod("lc2");
  const add = await runDriver({
    node, command: "add", conflist: conflist(), containerID: "ctr2", netns: p, path: [REF],
    capArgs: { ips: ["10.244.9.77/24"] }, args: { IgnoreUnknown: "1", K8S_POD_NAME: "lc2" },
  });
  assert.is(add.code, 0, add.stderr);
  assert.is(add.json.ips[0].address, "10.244.9.77/24");
  const del = await runDriver({ node, command: "del", conflist: conflist(), containerID: "ctr2", netns: p, path: [REF] });
  assert.is(del.code, 0, del.stderr);
});

test("errors go to stderr with exit 1", async () => {
  const r = await runDriver({ node, command: "add", conflist: { ...conflist(), cniVersion: "1.1.0" }, containerID: "ctr3", netns: "/var/run/netns/none", path: [REF] });
  assert.is(r.code, 1);
  assert.is(r.stdout, "");
  assert.match(r.stderr, /cnidriver: /);
  const u = await runDriver({ node, command: "bogus" as "add", conflist: conflist(), netns: "/x", path: [REF] });
  assert.is(u.code, 1);
  assert.match(u.stderr, /unknown command/);
});

test.run();
