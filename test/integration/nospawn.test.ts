// The shipped executable spawns no subprocess on ADD, CHECK, DEL, GC and STATUS of a warm node (counted through the one exec edge).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { SPAWN_TRACE } from "../../lib/host/exec.ts";
import { NETLINK_LOADING } from "../../lib/host/links.ts";
import { createPod, runPlugin, teardownAll, type PluginResult, type SimNode } from "../harness/testbed.ts";
import { leaseFiles } from "../harness/fixtures.ts";
import { CNI_PATH, OVSPLANE, rmTemp, tempDir, twoNodes, type AttachedPod } from "./common.ts";

let N: SimNode;
let dir: string;
let peerDir: string;
let conf: Record<string, unknown>;
let warm: AttachedPod;

/** The subprocesses a plugin call started, from its OVSPLANE_TRACE lines. */
const spawns = (r: PluginResult) => r.stderr.split("\n").filter((l) => l.startsWith(SPAWN_TRACE)).map((l) => l.slice(SPAWN_TRACE.length));

/** One CNI call of the executable with OVSPLANE_TRACE=1 (and extra env). */
function call(command: string, o: { id?: string; netns?: string; config?: Record<string, unknown>; env?: Record<string, string | undefined> } = {}): Promise<PluginResult> {
  return runPlugin({
    bin: OVSPLANE, node: N, command, path: CNI_PATH, config: o.config ?? conf,
    containerID: o.id ?? "", netns: o.netns ?? "", args: "IgnoreUnknown=1",
    env: { OVSPLANE_TRACE: "1", ...(o.id ? {} : { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined }), ...o.env },
  });
}

test.before(async () => {
  dir = tempDir();
  peerDir = tempDir();
  // Two joined nodes: A's underlay is real (no mtu in the conf: ADD reads the underlay's MTU, through netlink too).
  ({ A: N, confA: conf } = await twoNodes([dir, peerDir]));
});

test.after(async () => {
  await teardownAll();
  rmTemp(dir);
  rmTemp(peerDir);
});

test("the node's first ADD spawns only iptables-save and iptables-restore (its host state, once per node)", async () => {
  const pod = await createPod("w1");
  const add = await call("ADD", { id: "ctr-w1", netns: pod.netnsPath });
  assert.is(add.code, 0, add.stdout + add.stderr);
  assert.equal(spawns(add).map((a) => a.split(" ")[0]), ["iptables-save", "iptables-restore"]);
  warm = { pod, containerID: "ctr-w1", ip: String(add.json.ips[0].address).split("/")[0]!, result: add };
  // The gateway address and routes went through netlink.
  assert.ok(await pod.ping("10.244.1.1"), "w1 -> its gateway");
});

test("ADD, CHECK, STATUS, GC and DEL on a warm node start no subprocess; the pod works and leaves nothing behind", async () => {
  const pod = await createPod("w2");
  const add = await call("ADD", { id: "ctr-w2", netns: pod.netnsPath });
  assert.is(add.code, 0, add.stdout + add.stderr);
  assert.equal(spawns(add), [], "ADD");
  const ip = String(add.json.ips[0].address).split("/")[0]!;
  const host = String(add.json.interfaces[0].name);

  const check = await call("CHECK", { id: "ctr-w2", netns: pod.netnsPath, config: { ...conf, prevResult: add.json } });
  assert.is(check.code, 0, check.stdout + check.stderr);
  assert.equal(spawns(check), [], "CHECK");

  const status = await call("STATUS");
  assert.is(status.code, 0, status.stdout + status.stderr);
  assert.equal(spawns(status), [], "STATUS");
  // STATUS and VERSION do not even load the netlink edge (bun:ffi); ADD did.
  const version = await call("VERSION");
  assert.is(version.code, 0, version.stdout + version.stderr);
  assert.ok(add.stderr.includes(NETLINK_LOADING), add.stderr);
  assert.not.ok(status.stderr.includes(NETLINK_LOADING), status.stderr);
  assert.not.ok(version.stderr.includes(NETLINK_LOADING), version.stderr);

  // The pod made through netlink works: addresses, routes, TX checksum off (TCP over the userspace datapath).
  assert.ok(await pod.ping(warm.ip), "w2 -> w1");
  assert.ok(await warm.pod.ping(ip), "w1 -> w2");
  assert.ok(await pod.tcpCheck(warm.pod, warm.ip, 8080), "TCP w2 -> w1");
  const alias = JSON.parse((await N.exec(["ip", "-j", "link", "show", host])).stdout)[0].ifalias;
  assert.is(alias, "ovsplane:podnet/ctr-w2/eth0", "the host veth is tagged for GC");

  // GC with both pods valid removes nothing; the network keeps its host state (no iptables).
  const valid = [{ containerID: warm.containerID, ifname: "eth0" }, { containerID: "ctr-w2", ifname: "eth0" }];
  const gc = await call("GC", { config: { ...conf, "cni.dev/valid-attachments": valid } });
  assert.is(gc.code, 0, gc.stdout + gc.stderr);
  assert.equal(spawns(gc), [], "GC");
  assert.ok(await pod.ping(warm.ip), "GC left the pod alone");

  const del = await call("DEL", { id: "ctr-w2", netns: pod.netnsPath });
  assert.is(del.code, 0, del.stdout + del.stderr);
  assert.equal(spawns(del), [], "DEL");
  assert.is((await N.exec(["ip", "link", "show", host], { allowFail: true })).code, 1, "host veth gone");
  assert.is((await pod.exec(["ip", "link", "show", "eth0"], { allowFail: true })).code, 1, "pod end gone");
  assert.not.ok(leaseFiles(dir).includes(ip), "lease gone");
  assert.ok(leaseFiles(dir).includes(warm.ip), "the other pod's lease stays");
  // DEL again, everything already gone: still success, still no subprocess.
  const again = await call("DEL", { id: "ctr-w2", netns: pod.netnsPath });
  assert.is(again.code, 0, again.stdout + again.stderr);
  assert.equal(spawns(again), [], "DEL again");
});

test("GC of a crashed ADD's veth (found by its alias) starts no subprocess either", async () => {
  const pod = await createPod("w3");
  const add = await call("ADD", { id: "ctr-w3", netns: pod.netnsPath });
  assert.is(add.code, 0, add.stdout + add.stderr);
  const host = String(add.json.interfaces[0].name);
  // Only w1 is valid: w3's port, veth, flows and lease go.
  const gc = await call("GC", { config: { ...conf, "cni.dev/valid-attachments": [{ containerID: warm.containerID, ifname: "eth0" }] } });
  assert.is(gc.code, 0, gc.stdout + gc.stderr);
  assert.equal(spawns(gc), [], "GC");
  assert.is((await N.exec(["ip", "link", "show", host], { allowFail: true })).code, 1, "host veth gone");
  assert.ok(await warm.pod.ping("10.244.1.1"), "w1 still reaches its gateway");
});

test("the counter sees spawns: OVSPLANE_IP_EXEC=1 serves the links with ip subprocesses", async () => {
  const pod = await createPod("w4");
  const add = await call("ADD", { id: "ctr-w4", netns: pod.netnsPath, env: { OVSPLANE_IP_EXEC: "1" } });
  assert.is(add.code, 0, add.stdout + add.stderr);
  assert.ok(spawns(add).some((a) => a.startsWith("nsenter ")), spawns(add).join("\n"));
  const del = await call("DEL", { id: "ctr-w4", netns: pod.netnsPath, env: { OVSPLANE_IP_EXEC: "1" } });
  assert.is(del.code, 0, del.stdout + del.stderr);
  assert.ok(spawns(del).some((a) => a.startsWith("ip link del ")), spawns(del).join("\n"));
});

test.run();
