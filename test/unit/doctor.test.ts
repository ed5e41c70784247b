// Unit tests of ovsplanectl doctor's pure checks: residue from facts, and each check's verdict and fix.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { confFindings, forwardFinding, healthy, mtuFindings, offloadFindings, ovsFindings, podFlowFindings, residueFindings, type OvsFacts } from "../../lib/ctl/doctor/checks.ts";
import { findResidue, isClean, liveAttachments, type PortFact } from "../../lib/ctl/doctor/residue.ts";
import { attachmentId, vethAlias } from "../../lib/dataplane/names.ts";
import { podCookie, segmentCookie } from "../../lib/dataplane/pipeline.ts";

const att = (cid: string, network = "podnet") => ({ network, containerID: cid, ifname: "eth0", netns: `/var/run/netns/${cid}` });
const port = (name: string, cid: string, network = "podnet"): PortFact => ({ name, network, attachment: att(cid, network) });
const veth = (ifname: string, cid?: string, network = "podnet") => ({ ifname, mtu: 1450, ...(cid ? { ifalias: vethAlias(network, cid, "eth0") } : {}) });
const lease = (ip: string, cid?: string, age = 0) => ({ ip, mtimeMs: 1_000_000 - age, ...(cid ? { owner: { containerID: cid, ifname: "eth0" } } : {}) });

test("a clean node has no residue; live attachments are ports with their veth", () => {
  const ports = [port("v1", "a"), port("v2", "b")];
  const veths = [veth("v1", "a"), veth("v2", "b")];
  const r = findResidue("podnet", ports, veths, [lease("10.0.0.2", "a"), lease("10.0.0.3", "b")], [podCookie(attachmentId("podnet", "a", "eth0")), segmentCookie(1)], 1_000_000);
  assert.ok(isClean(r), JSON.stringify(r));
  assert.equal(liveAttachments("podnet", ports, veths), [{ containerID: "a", ifname: "eth0" }, { containerID: "b", ifname: "eth0" }]);
});

test("each kind of residue is found, and nothing of another network", () => {
  const ports: PortFact[] = [port("v1", "a"), port("v2", "gone"), { name: "v3", network: "podnet", tagError: "port v3: tag ovsplane-mac missing" }, port("w1", "x", "other")];
  const veths = [veth("v1", "a"), veth("v3"), veth("v9", "crashed"), veth("w9", "y", "other")];
  const orphanId = attachmentId("podnet", "crashed", "eth0");
  const r = findResidue("podnet", ports, veths, [lease("10.0.0.2", "a"), lease("10.0.0.3", "gone"), lease("10.0.0.4"), lease("10.0.0.5", undefined, 120_000)],
    [podCookie(orphanId), podCookie(orphanId), podCookie(attachmentId("other", "x", "eth0"))], 1_000_000);
  assert.equal(r.ports, [{ name: "v2", attachment: "gone/eth0", why: "host veth gone" }, { name: "v3", why: "port v3: tag ovsplane-mac missing" }]);
  assert.equal(r.veths, [{ ifname: "v9", attachment: "crashed/eth0" }]);
  assert.equal(r.leases, [{ ip: "10.0.0.3", owner: "gone/eth0" }, { ip: "10.0.0.5" }], "a fresh empty lease is a reservation in flight");
  assert.equal(r.flows, [{ id: `0x${orphanId.toString(16)}`, count: 2 }]);
  const f = residueFindings(r);
  assert.is(f.length, 6);
  assert.ok(f.every((x) => x.verdict === "fail" && /ovsplanectl gc/.test(x.fix!)));
  assert.not.ok(healthy(f));
});

test("conflist: ours first and valid; another file first; broken files; none", () => {
  assert.equal(confFindings("/d", ["10-ovsplane.conflist", "99-x.conf"], [], ["/d/10-ovsplane.conflist"]).map((f) => f.verdict), ["ok"]);
  const other = confFindings("/d", ["05-bridge.conflist", "10-ovsplane.conflist"], [], ["/d/10-ovsplane.conflist"]);
  assert.is(other[0]!.verdict, "fail");
  assert.match(other[0]!.detail, /05-bridge\.conflist comes first/);
  assert.is(confFindings("/d", ["a.conf"], [{ file: "/d/a.conf", why: "not JSON" }], [])[0]!.verdict, "fail");
  assert.match(confFindings("/d", [], [], [])[0]!.detail, /no ovsplane network/);
});

test("ip_forward, OVS daemons and datapath", () => {
  assert.is(forwardFinding("1\n").verdict, "ok");
  assert.is(forwardFinding("0\n").verdict, "fail");
  assert.is(forwardFinding(undefined).verdict, "fail");
  const base: OvsFacts = { network: "n", bridge: "br-int", configuredDatapath: "system", ovsdb: { ok: true }, vswitchd: { ok: true }, exists: true, datapathType: "system", kernelModule: true };
  assert.ok(healthy(ovsFindings(base)));
  assert.match(ovsFindings({ ...base, kernelModule: false })[0]!.fix!, /modprobe openvswitch/);
  assert.ok(healthy(ovsFindings({ ...base, kernelModule: false, configuredDatapath: "netdev", datapathType: "netdev" })));
  assert.match(ovsFindings({ ...base, ovsdb: { ok: false, error: "ENOENT" } })[0]!.detail, /ovsdb-server does not answer/);
  assert.not.ok(healthy(ovsFindings({ ...base, vswitchd: { ok: false } })));
  assert.is(ovsFindings({ ...base, datapathType: "netdev" }).find((f) => f.verdict === "warn")?.check, "ovs br-int");
});

test("MTU: uplink − 50 for pods, configured MTU too big, a host veth off", () => {
  const uplink = { ifname: "eth0", mtu: 1500 };
  assert.ok(healthy(mtuFindings({ network: "n", uplink, veths: [{ ifname: "v1", pod: "p", mtu: 1450 }] })));
  const big = mtuFindings({ network: "n", uplink, configured: 1500, veths: [] });
  assert.match(big[0]!.detail, /pod MTU 1500 > eth0 MTU 1500 − 50/);
  const off = mtuFindings({ network: "n", uplink, veths: [{ ifname: "v1", pod: "default/a", mtu: 1400 }] });
  assert.match(off[0]!.detail, /v1 \(default\/a\) has MTU 1400, pods get 1450/);
  assert.match(off[0]!.fix!, /ip link set v1 mtu 1450/);
  assert.not.ok(healthy(mtuFindings({ network: "n", uplinkError: "no IPv4 default route", veths: [] })));
});

test("TX offload only matters on the userspace datapath; pod flows missing fail", () => {
  const on = [{ pod: "p", ifname: "eth0", netns: "/var/run/netns/p", tx: "on" as const }];
  assert.equal(offloadFindings("n", "system", on), []);
  assert.match(offloadFindings("n", "netdev", on)[0]!.fix!, /nsenter --net=\/var\/run\/netns\/p ethtool -K eth0 tx off/);
  assert.ok(healthy(offloadFindings("n", "netdev", [{ ...on[0]!, tx: "off" }])));
  assert.is(offloadFindings("n", "netdev", [{ pod: "p", ifname: "eth0", netns: "x", error: "no ethtool" }])[0]!.verdict, "warn");
  assert.ok(healthy(podFlowFindings("n", true, [{ pod: "p", want: 9, have: 9, missing: 0, unexpected: 0 }])));
  assert.match(podFlowFindings("n", true, [{ pod: "p", want: 9, have: 8, missing: 1, unexpected: 0 }])[0]!.detail, /p: 8 of 9 flows, 1 missing/);
  assert.equal(podFlowFindings("n", false, [{ pod: "p", want: 9, have: 0, missing: 9, unexpected: 0 }]), []);
});

test.run();
