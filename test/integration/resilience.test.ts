// One node: STATUS, OVS down on ADD, a /proc/PID/ns/net netns, GC with two networks on one bridge.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createNode, createPod, runPlugin, teardownAll, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped, type Scope } from "../harness/fixtures.ts";
import { addPod, CNI_PATH, delPod, netConf, OVSPLANE, podFlowLines, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const t = suite("resilience");
let N: SimNode;
let dir: string;
let conf: Record<string, unknown>;

t.before(async () => {
  dir = tempDir();
  N = await createNode({ name: "r", underlayIP: "198.18.1.1" });
  conf = netConf(N, { podCIDR: "10.244.5.0/24", dataDir: dir, extra: { mtu: 1450 } });
});

t.after(async () => {
  await teardownAll();
  rmTemp(dir);
});

const status = () => runPlugin({ bin: OVSPLANE, node: N, command: "STATUS", path: CNI_PATH, config: conf, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
// Every test attaches the pods it needs (scoped: detached when it ends), so each stands on its own.
/** A pod of this test on network c, detached when the test ends. */
const attach = (s: Scope, c: Record<string, unknown>, name: string): Promise<AttachedPod> => s.use(() => addPod(N, c, name), (p) => delPod(N, c, p));

t("STATUS succeeds when OVSDB and ovs-vswitchd answer", scoped(async (s) => {
  const r = await status();
  assert.is(r.code, 0, r.stdout);
  await attach(s, conf, "r0");
  const r2 = await status();
  assert.is(r2.code, 0, r2.stdout);
}));

for (const daemon of ["ovsdb-server", "ovs-vswitchd"] as const) {
  t(`with ${daemon} stopped: STATUS is code 50, ADD is code 11 within seconds and changes nothing`, scoped(async (s) => {
    await attach(s, conf, `up-${daemon}`); // a working node: bridge, a port and a lease to keep
    const leases = leaseFiles(dir);
    const ports = await N.vsctl("list-ports", "br-int");
    if (daemon === "ovsdb-server") await N.stopOvsdb();
    else await N.stopVswitchd();
    try {
      const s = await status();
      assert.is(s.code, 1);
      assert.is(s.json.code, 50, s.stdout);
      const pod = await createPod(`down-${daemon}`);
      const t0 = Date.now();
      const r = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-down", netns: pod, path: CNI_PATH, config: conf });
      assert.ok(Date.now() - t0 < 10_000, `answered in ${Date.now() - t0} ms`);
      assert.is(r.json?.code, 11, r.stdout);
      assert.equal(leaseFiles(dir), leases, "no lease left");
      assert.equal((await pod.exec(["ip", "-o", "link"])).stdout.split("\n").filter(Boolean).length, 1, "only lo in the pod");
    } finally {
      if (daemon === "ovsdb-server") await N.startOvsdb();
      else await N.startVswitchd();
    }
    assert.is(await N.vsctl("list-ports", "br-int"), ports, "ports unchanged");
  }));
}

t("a /proc/PID/ns/net netns works for ADD, and DEL succeeds after the process exited", async () => {
  const pod = await createPod("procns");
  const child = spawn("ip", ["netns", "exec", pod.netns, "sleep", "300"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 300));
  const pid = (await N.exec(["pgrep", "-n", "-f", `^sleep 300$`])).stdout.trim();
  const nsPath = `/proc/${pid}/ns/net`;
  const add = await runPlugin({ bin: OVSPLANE, node: N, command: "ADD", containerID: "ctr-proc", netns: nsPath, path: CNI_PATH, config: conf });
  assert.is(add.code, 0, add.stdout);
  assert.equal(await pod.addresses(), [add.json.ips[0].address]);
  process.kill(Number(pid), "SIGKILL");
  child.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 300));
  assert.not.ok(existsSync(nsPath));
  const del = await runPlugin({ bin: OVSPLANE, node: N, command: "DEL", containerID: "ctr-proc", netns: nsPath, path: CNI_PATH, config: conf });
  assert.is(del.code, 0, del.stdout);
  assert.not.ok(existsSync(join(dir, "podnet", add.json.ips[0].address.split("/")[0])));
});

t("GC removes this network's stale attachments only, and forwards to IPAM", scoped(async (s) => {
  const confB = netConf(N, { name: "othernet", podCIDR: "10.244.6.0/24", dataDir: dir, extra: { mtu: 1450 } });
  const keep = await attach(s, conf, "gc-keep");
  const stale = await attach(s, conf, "gc-stale");
  const other = await attach(s, confB, "gc-other");
  const gcConf = { ...conf, "cni.dev/valid-attachments": [{ containerID: keep.containerID, ifname: "eth0" }] };
  const r = await runPlugin({ bin: OVSPLANE, node: N, command: "GC", path: CNI_PATH, config: gcConf, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
  assert.is(r.code, 0, r.stdout);
  const ports = (await N.vsctl("list-ports", "br-int")).split("\n");
  assert.ok(ports.includes(keep.result.json.interfaces[0].name), "valid attachment kept");
  assert.not.ok(ports.includes(stale.result.json.interfaces[0].name), "stale port removed");
  assert.ok(ports.includes(other.result.json.interfaces[0].name), "other network untouched");
  assert.not.ok(existsSync(join(dir, "podnet", stale.ip)), "stale lease released");
  assert.ok(existsSync(join(dir, "podnet", keep.ip)), "valid lease kept");
  assert.ok(existsSync(join(dir, "othernet", other.ip)), "other network's lease kept");
  assert.is((await N.exec(["ip", "link", "show", stale.result.json.interfaces[0].name], { allowFail: true })).code, 1, "stale veth removed");
  const pinged = await other.pod.ping("10.244.6.1");
  if (!pinged) console.log((await N.dumpFlows("br-int")).join("\n"), (await N.exec(["ip", "addr"])).stdout, (await other.pod.exec(["ip", "neigh"])).stdout);
  assert.ok(pinged, "other network still works");
  assert.ok((await podFlowLines(N)).length >= 6 * 2, "flows of the remaining pods kept");
}));

t("GC also removes what a crashed ADD left behind: a tagged veth without a port, pod flows without a port, a lease", scoped(async (s) => {
  const live = await attach(s, conf, "gc-live");
  const pod = await createPod("crashed");
  const host = "ovspdeadbeef001";
  await pod.exec(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", host, "netns", N.netnsPath]);
  await N.exec(["ip", "link", "set", host, "alias", "ovsplane:podnet/ctr-crashed/eth0"]);
  const orphanCookie = "0x6f7604000000dead";
  await N.ofctl("add-flow", N.ofSocket("br-int"), `table=10,priority=200,cookie=${orphanCookie},in_port=999 actions=drop`);
  writeFileSync(join(dir, "podnet", "10.244.5.250"), "ctr-crashed\r\neth0", { mode: 0o600 });
  const gcConf = { ...conf, "cni.dev/valid-attachments": [{ containerID: live.containerID, ifname: "eth0" }] };
  const r = await runPlugin({ bin: OVSPLANE, node: N, command: "GC", path: CNI_PATH, config: gcConf, env: { CNI_CONTAINERID: undefined, CNI_IFNAME: undefined } });
  assert.is(r.code, 0, r.stdout);
  assert.is((await N.exec(["ip", "link", "show", host], { allowFail: true })).code, 1, "orphan veth removed");
  assert.not.ok((await N.dumpFlows("br-int")).some((l) => l.includes(orphanCookie)), "orphan pod flows removed");
  assert.not.ok(existsSync(join(dir, "podnet", "10.244.5.250")), "orphan lease released");
  assert.ok((await podFlowLines(N)).length >= 6, "flows of live pods kept");
}));

t.run();
