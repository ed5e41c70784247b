// Two simulated nodes joined by VXLAN: reachability within segments, isolation between them, spoof guard, clean DEL.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { scoped } from "../harness/fixtures.ts";
import { addPod, CNI_PATH, delPod, OVSPLANE, POD_FLOWS, podFlowLines, rmTemp, tempDir, twoNodes, type AttachedPod } from "./common.ts";

const t = suite("two nodes, two segments");
let A: SimNode, B: SimNode;
let dirA: string, dirB: string;
let confA: Record<string, unknown>, confB: Record<string, unknown>;
const pods: Record<string, AttachedPod> = {};

// The pods of before() are shared and left as found; a test that breaks or removes a pod attaches its own (scoped).
t.before(async () => {
  dirA = tempDir();
  dirB = tempDir();
  ({ A, B, confA, confB } = await twoNodes([dirA, dirB]));
  pods.a1 = await addPod(A, confA, "a1", 100);
  pods.a2 = await addPod(A, confA, "a2", 100);
  pods.a3 = await addPod(A, confA, "a3", 200);
  pods.b1 = await addPod(B, confB, "b1", 100);
  pods.b2 = await addPod(B, confB, "b2", 200);
});

t.after(async () => {
  await teardownAll();
  rmTemp(dirA);
  rmTemp(dirB);
});

t("ADD result names the host veth and the pod interface with its sandbox", () => {
  const r = pods.a1!.result.json;
  assert.is(r.cniVersion, "1.1.0");
  assert.is(r.interfaces.length, 2);
  assert.is(r.interfaces[0].sandbox, undefined);
  assert.ok(/^ovsp[0-9a-f]{11}$/.test(r.interfaces[0].name));
  assert.is(r.interfaces[1].name, "eth0");
  assert.is(r.interfaces[1].sandbox, pods.a1!.pod.netnsPath);
  assert.is(r.ips[0].interface, 1);
  assert.ok(r.ips[0].address.startsWith("10.244.1."));
});

t("the OVS port carries the attachment's tags", async () => {
  const host = pods.a1!.result.json.interfaces[0].name;
  const ids = await A.vsctl("get", "port", host, "external_ids");
  for (const want of ["ovsplane-network=podnet", "ovsplane-container-id=ctr-a1", "ovsplane-ifname=eth0", "ovsplane-segment=\"100\"", "ovsplane-pod-name=a1", "ovsplane-pod-namespace=default"]) {
    assert.ok(ids.replace(/"/g, "").includes(want.replace(/"/g, "")), `${want} in ${ids}`);
  }
  const link = JSON.parse((await A.exec(["ip", "-j", "link", "show", host])).stdout)[0];
  assert.is(link.ifalias, "ovsplane:podnet/ctr-a1/eth0", "the host veth is tagged too (GC finds it after a crash)");
});

t("pods of one segment reach each other on one node", async () => {
  assert.ok(await pods.a1!.pod.ping(pods.a2!.ip));
});

t("pods of one segment reach each other across nodes (ping and TCP)", async () => {
  assert.ok(await pods.a1!.pod.ping(pods.b1!.ip, { tries: 8 }), "a1 -> b1");
  assert.ok(await pods.b2!.pod.ping(pods.a3!.ip, { tries: 8 }), "b2 -> a3 (segment 200)");
  assert.ok(await pods.a1!.pod.tcpCheck(pods.b1!.pod, pods.b1!.ip, 8080), "TCP a1 -> b1");
});

t("pods of different segments are isolated on one node and across nodes", async () => {
  assert.not.ok(await pods.a1!.pod.ping(pods.a3!.ip, { tries: 2 }), "a1 -> a3 same node");
  assert.not.ok(await pods.a1!.pod.ping(pods.b2!.ip, { tries: 2 }), "a1 -> b2 across nodes");
  assert.not.ok(await pods.b2!.pod.ping(pods.a1!.ip, { tries: 2 }), "b2 -> a1 across nodes");
});

t("the gateway is no path around isolation, even with ip_forward=1 on the node", async () => {
  const fwd = await A.exec(["sysctl", "-n", "net.ipv4.ip_forward"]);
  assert.is(fwd.stdout.trim(), "1");
  await pods.a1!.pod.exec(["ip", "route", "add", `${pods.a3!.ip}/32`, "via", "10.244.1.1", "dev", "eth0"]);
  try {
    assert.not.ok(await pods.a1!.pod.ping(pods.a3!.ip, { tries: 2 }));
  } finally {
    await pods.a1!.pod.exec(["ip", "route", "del", `${pods.a3!.ip}/32`], { allowFail: true });
  }
});

t("the node reaches its pods of every segment, and pods reach the node", async () => {
  for (const p of [pods.a1!, pods.a3!]) {
    const r = await A.exec(["ping", "-n", "-c", "1", "-W", "2", p.ip], { allowFail: true });
    assert.is(r.code, 0, `node A -> ${p.pod.name}`);
    assert.ok(await p.pod.ping("10.244.1.1"), `${p.pod.name} -> gateway`);
  }
});

t("a pod sending from an address that is not its own is dropped", async () => {
  const p = pods.a2!.pod;
  await p.exec(["ip", "addr", "add", "10.244.1.250/24", "dev", "eth0"]);
  try {
    const r = await p.exec(["ping", "-n", "-c", "2", "-W", "1", "-I", "10.244.1.250", pods.a1!.ip], { allowFail: true });
    assert.is.not(r.code, 0, "spoofed source must not get through");
    assert.ok(await p.ping(pods.a1!.ip), "own address still works");
  } finally {
    await p.exec(["ip", "addr", "del", "10.244.1.250/24", "dev", "eth0"], { allowFail: true });
  }
});

t("flows are per local pod and per peer node, never per remote pod", async () => {
  assert.is((await podFlowLines(A)).length, 3 * POD_FLOWS, `${POD_FLOWS} flows for each of the 3 pods on A`);
  assert.is((await podFlowLines(B)).length, 2 * POD_FLOWS);
  const flowsA = await A.dumpFlows("br-int", 30);
  assert.is(flowsA.filter((l) => l.includes("tun_dst")).length, 1, "one peer flow");
  assert.not.ok(flowsA.some((l) => l.includes(pods.b1!.ip)), "no flow names a remote pod");
});

t("a second ADD of an existing attachment is refused and changes nothing", async () => {
  const before = readdirSync(join(dirA, "podnet")).sort();
  const flowsBefore = (await podFlowLines(A)).length;
  const r = await runPlugin({ bin: OVSPLANE, node: A, command: "ADD", containerID: "ctr-a1", netns: pods.a1!.pod, args: "IgnoreUnknown=1;OVSPLANE_SEGMENT=100", path: CNI_PATH, config: confA });
  assert.is.not(r.code, 0);
  assert.ok(r.json && r.json.code && /exists/.test(r.json.msg), r.stdout);
  assert.equal(readdirSync(join(dirA, "podnet")).sort(), before, "leases unchanged");
  assert.is((await podFlowLines(A)).length, flowsBefore, "flows unchanged");
  assert.ok(await pods.a1!.pod.ping(pods.a2!.ip), "first pod still works");
});

t("CHECK passes for a healthy attachment and names what is missing", scoped(async (s) => {
  const conf = { ...confA, prevResult: pods.a1!.result.json };
  const ok = await runPlugin({ bin: OVSPLANE, node: A, command: "CHECK", containerID: "ctr-a1", netns: pods.a1!.pod, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf });
  assert.is(ok.code, 0, ok.stdout);
  const broken = await s.use(() => addPod(A, confA, "chk", 200), (p) => delPod(A, confA, p));
  const confBroken = { ...confA, prevResult: broken.result.json };
  await broken.pod.exec(["ip", "route", "del", "default"]);
  const bad = await runPlugin({ bin: OVSPLANE, node: A, command: "CHECK", containerID: broken.containerID, netns: broken.pod, args: "IgnoreUnknown=1", path: CNI_PATH, config: confBroken });
  assert.is.not(bad.code, 0);
  assert.match(bad.json.msg, /route 0\.0\.0\.0\/0/);
}));

t("DEL removes port, veth, flows and lease, and succeeds again and without a netns", scoped(async (s) => {
  const p = await s.use(() => addPod(A, confA, "del", 100), (p) => delPod(A, confA, p));
  const host = p.result.json.interfaces[0].name;
  const del = await delPod(A, confA, p);
  assert.is(del.code, 0, del.stdout);
  assert.not.ok((await A.vsctl("list-ports", "br-int")).split("\n").includes(host), "port gone");
  assert.is((await A.exec(["ip", "link", "show", host], { allowFail: true })).code, 1, "veth gone");
  assert.is((await podFlowLines(A)).length, 3 * POD_FLOWS, "its flows gone, the others (a1, a2, a3) kept");
  assert.not.ok(existsSync(join(dirA, "podnet", p.ip)), "lease gone");
  assert.ok(await pods.a1!.pod.ping(pods.b1!.ip, { tries: 5 }), "others unaffected");
  assert.is((await delPod(A, confA, p)).code, 0, "repeated DEL");
  const noNs = await runPlugin({ bin: OVSPLANE, node: A, command: "DEL", containerID: p.containerID, env: { CNI_NETNS: undefined }, path: CNI_PATH, config: confA });
  assert.is(noNs.code, 0, noNs.stdout);
}));

t("without tunnel.localIP and mtu, ADD takes them from the default-route interface", scoped(async (s) => {
  await A.exec(["ip", "route", "add", "default", "via", "198.18.0.254", "dev", "br-phy"]);
  s.defer(() => A.exec(["ip", "route", "del", "default"], { allowFail: true }));
  const conf = structuredClone(confA) as Record<string, any>;
  delete conf.tunnel;
  delete conf.mtu;
  const p = await s.use(() => addPod(A, conf, "dflt", 100), (p) => delPod(A, conf, p));
  const mtu = Number((await A.exec(["cat", "/sys/class/net/br-phy/mtu"])).stdout.trim());
  assert.is(p.result.json.interfaces[1].mtu, mtu - 50);
  const opts = await A.vsctl("get", "interface", "ovsp-vxlan", "options:local_ip");
  assert.is(opts.replace(/"/g, ""), "198.18.0.1");
  assert.ok(await p.pod.ping(pods.b1!.ip, { tries: 5 }), "still crosses the tunnel");
  assert.is((await delPod(A, conf, p)).code, 0);
}));

t.run();
