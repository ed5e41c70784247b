// ovsplanectl status, pods, leases and flows on a simulated node: real OVS state read back, planted breakages shown.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { attachmentId } from "../../lib/dataplane/names.ts";
import { podCookie } from "../../lib/dataplane/pipeline.ts";
import { connectNodes, createNode, teardownAll, type SimNode } from "../harness/testbed.ts";
import { leaseFiles, scoped } from "../harness/fixtures.ts";
import { addPod, BIN_DIR, delPod, netConf, POD_FLOWS, rmTemp, tempDir, type AttachedPod } from "./common.ts";

const t = suite("ovsplanectl status, pods, leases, flows");
const CTL = join(BIN_DIR, "ovsplanectl");
let A: SimNode;
let dataDir: string, confDir: string;
let conf: Record<string, unknown>;
const pods: Record<string, AttachedPod> = {};

t.before(async () => {
  dataDir = tempDir();
  confDir = tempDir("ovsp-conf-");
  A = await createNode({ name: "c", underlayIP: "198.18.7.1" });
  const B = await createNode({ name: "d", underlayIP: "198.18.7.2" });
  await connectNodes(A, B); // the underlay address the tunnel needs; B is the static peer
  conf = netConf(A, { podCIDR: "10.244.7.0/28", peers: [{ nodeIP: "198.18.7.2", podCIDR: "10.244.8.0/24" }], dataDir });
  mkdirSync(confDir, { recursive: true });
  writeFileSync(join(confDir, "10-ovsplane.conflist"), JSON.stringify({ cniVersion: conf.cniVersion, name: conf.name, plugins: [conf] }));
  pods.web1 = await addPod(A, conf, "web-1", 100);
  pods.db1 = await addPod(A, conf, "db-1", 200);
});

t.after(async () => {
  await teardownAll();
  rmTemp(dataDir);
  rmTemp(confDir);
});

/** Runs ovsplanectl inside the node's netns with its OVS env. */
async function ctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return A.exec([CTL, ...args, "--conf-dir", confDir], { allowFail: true, timeoutMs: 20_000 });
}

async function ctlJson(...args: string[]): Promise<{ code: number; doc: any; stdout: string }> {
  const r = await ctl(...args, "--json");
  let doc: any;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    assert.unreachable(`not JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
  return { code: r.code, doc, stdout: r.stdout };
}

const podRow = (doc: any, name: string) => doc.pods.find((p: any) => p.pod === name);

t("status: healthy, with OVS, bridge, shared ports, peer, segments and pods", async () => {
  const { code, doc } = await ctlJson("status");
  assert.is(code, 0, JSON.stringify(doc.problems));
  assert.ok(doc.healthy);
  assert.equal(doc.problems, []);
  assert.is(doc.versions.ovsplane, "0.1.0");
  assert.ok(!("ovs" in doc.versions) || typeof doc.versions.ovs === "string", "OVS version when OVSDB records it (ovs-ctl does; the simulated nodes do not)");
  const n = doc.networks[0];
  assert.is(n.name, "podnet");
  assert.ok(n.ovsdb.ok && n.vswitchd.ok && n.bridgeExists);
  assert.is(n.datapathType.actual, "netdev");
  assert.is(n.tunnel.name, "ovsp-vxlan");
  assert.is(n.gateway.name, "ovsplane-gw");
  assert.ok(n.tunnel.ofport > 0 && n.gateway.ofport > 0);
  assert.equal(n.peers, [{ nodeIP: "198.18.7.2", podCIDR: "10.244.8.0/24", accepted: true, routed: true }]);
  assert.equal(n.segments, [{ segment: 100, pods: 1, flow: true }, { segment: 200, pods: 1, flow: true }]);
  assert.equal(n.pods, { total: 2, healthy: 2 });
  const human = await ctl("status");
  assert.is(human.code, 0);
  assert.match(human.stdout, /^healthy$/m);
  assert.not.match(human.stdout, /\x1b\[/, "no colour when not on a terminal");
});

t("pods: one row per attachment, flows and lease all there", async () => {
  const { code, doc } = await ctlJson("pods");
  assert.is(code, 0);
  assert.is(doc.pods.length, 2);
  for (const [name, seg] of [["web-1", 100], ["db-1", 200]] as const) {
    const p = podRow(doc, name);
    const a = name === "web-1" ? pods.web1! : pods.db1!;
    assert.is(p.namespace, "default");
    assert.is(p.containerID, a.containerID);
    assert.is(p.ifname, "eth0");
    assert.is(p.ip, a.ip);
    assert.is(p.segment, seg);
    assert.is(p.hostVeth, a.result.json.interfaces[0].name);
    assert.is(p.ofport, Number(await A.vsctl("get", "interface", p.hostVeth, "ofport")));
    assert.equal(p.flows, { ok: true, want: POD_FLOWS, have: POD_FLOWS, missing: [], unexpected: [] });
    assert.ok(p.lease.ok);
    assert.equal(p.problems, []);
  }
  const human = await ctl("pods");
  assert.match(human.stdout, /default\/web-1\s+ctr-web-1\s+eth0\s+10\.244\.7\.\d+/);
});

t("leases: used and free per range, each lease with its container and port; a stale lease marked", scoped(async (s) => {
  let { code, doc } = await ctlJson("leases");
  assert.is(code, 0);
  const n = doc.networks[0];
  assert.is(n.network, "podnet");
  // 10.244.7.0/28: .1 .. .14, the gateway .1 excluded: 13 addresses
  assert.equal(n.ranges, [{ set: 0, subnet: "10.244.7.0/28", rangeStart: "10.244.7.1", rangeEnd: "10.244.7.14", gateway: "10.244.7.1", size: 13, used: 2, free: 11 }]);
  const web = n.leases.find((l: any) => l.ip === pods.web1!.ip);
  assert.is(web.containerID, "ctr-web-1");
  assert.is(web.ifname, "eth0");
  assert.is(web.port, pods.web1!.result.json.interfaces[0].name);
  assert.is(web.stale, false);
  // A lease left behind by a container that has no port any more.
  const ghost = join(dataDir, "podnet", "10.244.7.14");
  writeFileSync(ghost, "ctr-gone\r\neth0");
  s.defer(() => rmSync(ghost, { force: true }));
  ({ code, doc } = await ctlJson("leases"));
  const g = doc.networks[0].leases.find((l: any) => l.ip === "10.244.7.14");
  assert.equal({ c: g.containerID, stale: g.stale, port: g.port }, { c: "ctr-gone", stale: true, port: undefined });
  assert.is(doc.networks[0].ranges[0].used, 3);
  const human = await ctl("leases");
  assert.match(human.stdout, /10\.244\.7\.14\s+ctr-gone\s+eth0\s+-\s+STALE/);
}));

t("flows: grouped by owner and named, with counters; --pod, --segment, --peer filter", async () => {
  await pods.web1!.pod.exec(["ping", "-c", "1", "-W", "1", pods.db1!.ip], { allowFail: true }); // counts packets (isolated segments: dropped)
  const { code, doc } = await ctlJson("flows");
  assert.is(code, 0);
  const groups = doc.bridges[0].groups;
  const names = groups.map((g: any) => g.owner.name);
  for (const want of [
    "node (pipeline defaults)",
    "segment 100",
    "segment 200",
    "peer 198.18.7.2",
    "gateway of network podnet",
    "route to 10.244.8.0/24 via 198.18.7.2 (network podnet)",
    "pod default/web-1 (ctr ctr-web-1, eth0)",
    "pod default/db-1 (ctr ctr-db-1, eth0)",
  ]) assert.ok(names.includes(want), `${want} in ${JSON.stringify(names)}`);
  const web = groups.find((g: any) => g.owner.name === "pod default/web-1 (ctr ctr-web-1, eth0)");
  assert.is(web.flows.length, POD_FLOWS);
  assert.ok(web.packets > 0, "the ping went through the pod's classifier flow");
  assert.ok(web.flows.every((f: any) => /^0x6f7604/.test(f.cookie) && typeof f.match === "string"));
  const pod = await ctlJson("flows", "--pod", "default/web-1");
  assert.equal(pod.doc.bridges[0].groups.map((g: any) => g.owner.kind), ["pod"]);
  const seg = await ctlJson("flows", "--segment", "200");
  assert.equal(seg.doc.bridges[0].groups.map((g: any) => g.owner.name), ["segment 200", "pod default/db-1 (ctr ctr-db-1, eth0)"]);
  const peer = await ctlJson("flows", "--peer", "198.18.7.2");
  assert.equal(peer.doc.bridges[0].groups.map((g: any) => g.owner.kind), ["peer", "route"]);
  const human = await ctl("flows");
  assert.match(human.stdout, /^pod default\/web-1 \(ctr ctr-web-1, eth0\)  \(7 flows, \d+ packets?\)$/m);
  assert.match(human.stdout, /^route to 10\.244\.8\.0\/24 via 198\.18\.7\.2 \(network podnet\)/m);
  if (process.env.CTL_SHOW) for (const c of ["status", "pods", "leases", "flows"]) console.log(`$ ovsplanectl ${c}\n${(await ctl(c)).stdout}`);
});

t("pods and status show a pod whose flows were deleted and whose lease was removed", scoped(async (s) => {
  const p = await s.use(() => addPod(A, conf, "broken-1", 100), (x) => delPod(A, conf, x));
  const id = attachmentId("podnet", p.containerID, "eth0");
  await A.ofctl("del-flows", A.ofSocket("br-int"), `cookie=0x${podCookie(id).toString(16)}/-1`);
  let { doc } = await ctlJson("pods");
  let row = podRow(doc, "broken-1");
  assert.not.ok(row.flows.ok);
  assert.is(row.flows.have, 0);
  assert.is(row.flows.missing.length, POD_FLOWS);
  assert.ok(row.lease.ok, "the lease is still there");
  assert.ok(podRow(doc, "web-1").flows.ok, "the other pods are untouched");
  const st = await ctlJson("status");
  assert.is.not(st.code, 0);
  assert.ok(st.doc.problems.some((x: string) => /broken-1.*flows: 7 missing|broken-1.*missing/.test(x)), JSON.stringify(st.doc.problems));
  rmSync(join(dataDir, "podnet", p.ip));
  ({ doc } = await ctlJson("pods"));
  row = podRow(doc, "broken-1");
  assert.is(row.lease.ok, false);
  assert.ok(row.problems.some((x: string) => /no lease/.test(x)));
  const human = await ctl("pods");
  assert.match(human.stdout, /default\/broken-1 .* MISSING 0\/\d+\s+MISSING/);
  if (process.env.CTL_SHOW) for (const c of ["pods", "status"]) console.log(`$ ovsplanectl ${c}\n${(await ctl(c)).stdout}`);
}));

t("status: not healthy (exit 1) while ovs-vswitchd is stopped", scoped(async (s) => {
  await A.stopVswitchd();
  s.defer(() => A.startVswitchd());
  const { code, doc } = await ctlJson("status");
  assert.is(code, 1);
  assert.not.ok(doc.healthy);
  assert.not.ok(doc.networks[0].vswitchd.ok);
  assert.ok(doc.networks[0].ovsdb.ok);
  assert.ok(doc.problems.some((x: string) => /ovs-vswitchd does not serve/.test(x)));
  assert.ok(leaseFiles(dataDir).length >= 2);
}));

t.run();
