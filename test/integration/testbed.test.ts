// Integration test of the test harness itself: nodes with their own OVS, underlay, VXLAN, pods, teardown.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import {
  attachVethPod, connectNodes, createNode, createPod, runPlugin, sweepLeftovers, teardownAll,
  pidAlive, RUN_PREFIX, TEST_PREFIX, type SimNode, type SimPod,
} from "../harness/testbed.ts";

let a: SimNode, b: SimNode;
let p1: SimPod, p2: SimPod, p3: SimPod;

test.after(async () => {
  await teardownAll();
});

async function netnsOfRun(): Promise<string[]> {
  const r = await run(["ip", "netns", "list"]);
  return r.stdout.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n.startsWith(RUN_PREFIX));
}

test("two nodes, each with its own OVS, joined by the underlay", async () => {
  [a, b] = await Promise.all([
    createNode({ name: "a", underlayIP: "198.18.0.1", podCIDR: "10.244.1.0/24" }),
    createNode({ name: "b", underlayIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }),
  ]);
  assert.ok(a.netns.startsWith(`${RUN_PREFIX}-a`), a.netns);
  assert.is(a.netnsPath, `/var/run/netns/${a.netns}`);
  assert.ok(existsSync(join(a.runDir, "db.sock")));
  assert.is(a.ofSocket("br-int"), `unix:${a.runDir}/br-int.mgmt`);
  assert.is((await a.exec(["cat", "/proc/sys/net/ipv4/ip_forward"])).stdout.trim(), "1");
  await connectNodes(a, b);
  const ok = await a.exec(["ping", "-c", "1", "-W", "1", "198.18.0.2"], { allowFail: true });
  assert.is(ok.code, 0, ok.stdout + ok.stderr);
  for (const n of [a, b]) {
    const show = await n.vsctl("show");
    assert.match(show, /Bridge br-phy/);
    assert.match(show, /Port ul0/);
    assert.is(await n.vsctl("get", "bridge", "br-phy", "datapath_type"), "netdev");
  }
  // The host never sees the underlay address.
  const host = await run(["ip", "-o", "addr", "show", "to", "198.18.0.0/15"]);
  assert.is(host.stdout.trim(), "");
});

test("two veth pods on br-int of node A ping each other with the NORMAL flow", async () => {
  await a.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev");
  assert.is(await a.vsctl("get", "bridge", "br-int", "datapath_type"), "netdev");
  [p1, p2] = await Promise.all([createPod("one"), createPod("two")]);
  await attachVethPod(a, p1, { bridge: "br-int", address: "10.244.1.2/24", hostIf: "vh1" });
  await attachVethPod(a, p2, { bridge: "br-int", address: "10.244.1.3/24", hostIf: "vh2" });
  assert.equal(await p1.addresses(), ["10.244.1.2/24"]);
  assert.ok(await p1.ping("10.244.1.3"), "pod one -> pod two");
  assert.ok(await p2.ping("10.244.1.2"), "pod two -> pod one");
  assert.not.ok(await p1.ping("10.244.1.99", { tries: 1 }), "no answer from a missing address");
  assert.match((await a.dumpFlows("br-int")).join("\n"), /actions=NORMAL/);
});

test("TCP between pods on one node (listenTcp / connectTcp / tcpCheck)", async () => {
  await p1.txOffloadOff();
  await p2.txOffloadOff();
  const l = await p2.listenTcp(8080);
  const c = await p1.connectTcp("10.244.1.3", 8080, "abc\n");
  assert.ok(c.ok, c.stderr);
  assert.is(await l.received(), "abc\n");
  assert.ok(await p1.tcpCheck(p2, "10.244.1.3", 8081));
  assert.not.ok((await p1.connectTcp("10.244.1.3", 9, "x", { timeoutMs: 3000 })).ok, "closed port refuses");
});

test("a flow-based VXLAN port on br-int crosses the underlay to node B", async () => {
  await b.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev");
  p3 = await createPod("three");
  await attachVethPod(b, p3, { bridge: "br-int", address: "10.244.1.4/24", hostIf: "vh3" });
  for (const [n, local] of [[a, "198.18.0.1"], [b, "198.18.0.2"]] as const) {
    await n.vsctl("add-port", "br-int", "vxlan0", "--", "set", "interface", "vxlan0", "type=vxlan",
      "options:remote_ip=flow", "options:key=flow", `options:local_ip=${local}`);
    await n.ofctl("del-flows", "br-int");
  }
  const [ofA, txA, ofB, txB] = await Promise.all([a.vsctl("get", "interface", "vh1", "ofport"),
    a.vsctl("get", "interface", "vxlan0", "ofport"), b.vsctl("get", "interface", "vh3", "ofport"),
    b.vsctl("get", "interface", "vxlan0", "ofport")]);
  await a.ofctl("add-flow", "br-int", `in_port=${ofA},actions=set_field:198.18.0.2->tun_dst,set_field:100->tun_id,output:${txA}`);
  await a.ofctl("add-flow", "br-int", `in_port=${txA},tun_id=100,actions=output:${ofA}`);
  await b.ofctl("add-flow", "br-int", `in_port=${ofB},actions=set_field:198.18.0.1->tun_dst,set_field:100->tun_id,output:${txB}`);
  await b.ofctl("add-flow", "br-int", `in_port=${txB},tun_id=100,actions=output:${ofB}`);
  assert.ok(await p1.ping("10.244.1.4"), "pod on A -> pod on B over VXLAN");
  await p3.txOffloadOff();
  assert.ok(await p1.tcpCheck(p3, "10.244.1.4", 5001), "TCP over VXLAN");
});

test("daemons restart; br-phy gets its address back", async () => {
  await a.stopVswitchd();
  assert.not.ok(a.running("vswitchd"));
  await a.startVswitchd();
  assert.ok(a.running("vswitchd"));
  let ok = false;
  for (let i = 0; i < 10 && !ok; i++) ok = (await a.exec(["ping", "-c", "1", "-W", "1", "198.18.0.2"], { allowFail: true })).code === 0;
  assert.ok(ok, "underlay after vswitchd restart");
  await a.stopOvsdb();
  assert.not.ok(a.running("ovsdb"));
  await a.startOvsdb();
  assert.match(await a.vsctl("list-br"), /br-int/);
});

test("runPlugin runs the executable inside the node netns with the CNI env and stdin", async () => {
  const dir = mkdtempSync(join(a.runDir, "bin-"));
  const bin = join(dir, "envdump");
  writeFileSync(bin, `#!/bin/sh
cfg=$(cat)
printf '{"netns":"%s","cmd":"%s","ctr":"%s","ifname":"%s","args":"%s","path":"%s","cni":%s,"rundir":"%s"}' \\
  "$(ip netns identify $$)" "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$cfg" "$OVS_RUNDIR"
exit 3
`);
  chmodSync(bin, 0o755);
  const r = await runPlugin({ bin, node: a, command: "ADD", containerID: "c1", netns: p1, args: { K8S_POD_NAME: "x" }, config: { cniVersion: "1.0.0", name: "n" } });
  assert.is(r.code, 3);
  assert.equal(r.json, { netns: a.netns, cmd: "ADD", ctr: "c1", ifname: "eth0", args: "K8S_POD_NAME=x", path: dir, cni: { cniVersion: "1.0.0", name: "n" }, rundir: a.runDir });
});

test("sweepLeftovers removes a dead run's namespaces, processes and dirs, not live ones", async () => {
  const dead = `${TEST_PREFIX}dead00`;
  mkdirSync("/run/ovsp-test", { recursive: true });
  await run(["ip", "netns", "add", `${dead}-x`]);
  const dir = mkdtempSync(`/tmp/${dead}-x-`);
  const sleeper = run(["ip", "netns", "exec", `${dead}-x`, "sleep", "300"], { allowFail: true, timeoutMs: 400_000 });
  await new Promise((r) => setTimeout(r, 200));
  const removed = await sweepLeftovers();
  assert.ok(removed.includes(`${dead}-x`), removed.join(","));
  assert.is((await sleeper).code !== 0, true, "the sleeper was killed");
  assert.not.ok(existsSync(dir));
  assert.ok((await netnsOfRun()).includes(a.netns), "this (live) run is untouched");
});

test("teardownAll removes every namespace, daemon and dir; a second call is harmless", async () => {
  const dirs = [a.runDir, b.runDir];
  const pids = [a, b].flatMap((n) => ["ovsdb", "vswitchd"].map((d) => Number(readFileSync(join(n.runDir, `${d}.pid`), "utf8"))));
  assert.ok(pids.every(pidAlive), "daemons run before teardown");
  assert.ok((await netnsOfRun()).length >= 6);
  await teardownAll();
  await teardownAll();
  assert.equal(await netnsOfRun(), []);
  for (const d of dirs) assert.not.ok(existsSync(d), d);
  for (const p of pids) assert.not.ok(pidAlive(p), `pid ${p} still alive`);
  const ps = await run(["pgrep", "-f", RUN_PREFIX], { allowFail: true });
  assert.is(ps.stdout.trim(), "", "no process mentions this run");
});

test.run();
