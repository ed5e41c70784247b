// Unit tests of the agent's pure pod logic: the GC decision, its DEL request, and the relabel plan (moves and the one bundle).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decodeTags, encodeTags, Tag, type Attachment } from "../../lib/dataplane/attachment.ts";
import { gcGraceMs } from "../../lib/agent/main.ts";
import { gcDecision, gcDelRequest, gcKey } from "../../lib/agent/gc.ts";
import { relabelFlowOps, relabelMoves } from "../../lib/agent/relabel.ts";
import type { TaggedPort } from "../../lib/node/bridge.ts";
import { podFlows, segmentFlows } from "../../lib/dataplane/builders.ts";
import { attachmentId } from "../../lib/dataplane/names.ts";
import { EXACT_MASK, podCookie, segmentCookie } from "../../lib/dataplane/pipeline.ts";

const att = (name: string, o: Partial<Attachment> = {}): Attachment => ({
  network: "podnet", containerID: `ctr-${name}`, ifname: "eth0", netns: `/var/run/netns/${name}`, segment: 100,
  ips: ["10.244.1.5/24"], mac: "0a:58:0a:f4:01:05", podNamespace: "x", podName: name, ...o,
});
const base = { now: 10_000, graceMs: 1000, synced: true, missingSince: new Map<string, number>() };

test("GC: nothing before the pod informer is synced, and no clock starts", () => {
  const d = gcDecision({ ...base, synced: false, attachments: [att("a")], pods: [], missingSince: new Map([[gcKey(att("a")), 0]]) });
  assert.equal(d.remove, []);
  assert.equal([...d.missingSince], [[gcKey(att("a")), 0]], "clocks kept as they are");
  assert.is(gcDecision({ ...base, synced: false, attachments: [att("b")], pods: [] }).missingSince.size, 0);
});

test("GC: a listed pod is never collected, however long; its clock is dropped", () => {
  const d = gcDecision({ ...base, attachments: [att("a")], pods: [{ namespace: "x", name: "a" }], missingSince: new Map([[gcKey(att("a")), 0]]) });
  assert.equal(d.remove, []);
  assert.is(d.missingSince.size, 0);
});

test("GC: a missing pod starts the clock, is kept within the grace period, removed after it", () => {
  const a = att("a");
  const first = gcDecision({ ...base, attachments: [a], pods: [] });
  assert.equal(first.remove, []);
  assert.is(first.missingSince.get(gcKey(a)), 10_000);
  const within = gcDecision({ ...base, now: 10_999, attachments: [a], pods: [], missingSince: first.missingSince });
  assert.equal(within.remove, []);
  const after = gcDecision({ ...base, now: 11_000, attachments: [a], pods: [], missingSince: within.missingSince });
  assert.equal(after.remove, [a]);
  assert.is(after.missingSince.size, 0);
});

test("GC: a pod of the same name in another namespace does not keep it; a port without pod tags is never collected", () => {
  const a = att("a");
  const { podNamespace: _n, podName: _p, ...bare } = att("bare");
  const d = gcDecision({ ...base, attachments: [a, bare], pods: [{ namespace: "y", name: "a" }], missingSince: new Map([[gcKey(a), 0], [gcKey(bare), 0]]) });
  assert.equal(d.remove, [a]);
  assert.is(d.missingSince.size, 0, "no clock for the untagged port");
});

test("GC: clocks of attachments that are gone are dropped", () => {
  const d = gcDecision({ ...base, attachments: [], pods: [], missingSince: new Map([["podnet/ctr-old/eth0", 0]]) });
  assert.is(d.missingSince.size, 0);
});

test("GC: the DEL request comes from the conflist's ovsplane plugin and the attachment's tags", () => {
  const conflist = { cniVersion: "1.0.0", name: "podnet", plugins: [{ type: "ovsplane", bridge: "br-int", ipam: { type: "ovsplane-ipam" } }, { type: "portmap" }] };
  const r = gcDelRequest(conflist, att("a"), ["/opt/cni/bin"]);
  assert.is(r.command, "DEL");
  assert.is(r.containerID, "ctr-a");
  assert.is(r.ifname, "eth0");
  assert.is(r.netns, "/var/run/netns/a");
  assert.equal(r.conf, { type: "ovsplane", bridge: "br-int", ipam: { type: "ovsplane-ipam" }, name: "podnet", cniVersion: "1.0.0" });
  assert.equal(JSON.parse(r.stdin), r.conf);
  assert.equal(r.args, { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "x", K8S_POD_NAME: "a" });
  assert.is(r.rawArgs, "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=a");
  assert.throws(() => gcDelRequest({ name: "n", plugins: [] }, att("a"), []), /no plugin of type ovsplane/);
});

const port = (name: string, a?: Attachment): TaggedPort => ({ uuid: `u-${name}`, name: `veth-${name}`, externalIds: {}, ...(a ? { network: a.network, attachment: a } : {}) });

test("relabel: moves only pods of the network whose namespace maps elsewhere", () => {
  const ports = [
    port("a", att("a")),
    port("b", att("b", { segment: 200 })),
    port("c", att("c", { podNamespace: "unknown" })),
    port("d", att("d", { network: "other" })),
    port("e", att("e", { podNamespace: undefined, podName: undefined })),
    port("f", att("f", { segmentPinned: true })),
    port("gw"),
  ];
  const moves = relabelMoves(ports, "podnet", { x: 200 });
  assert.equal(moves.map((m) => [m.port.name, m.from, m.to]), [["veth-a", 100, 200]]);
});

test("relabel: one bundle — old pod flows deleted, new ones and the new segment's flow added, the emptied old segment's flow deleted", () => {
  const a = att("a");
  const ports = [port("a", a), port("b", att("b", { segment: 300, podNamespace: "y" }))];
  const moves = relabelMoves(ports, "podnet", { x: 200 }).map((m) => ({ ...m, ofport: 7 }));
  const node = { gateway: 2, gatewayMAC: "0a:58:00:00:00:01" };
  const id = attachmentId("podnet", a.containerID, a.ifname);
  const ops = relabelFlowOps(moves, ports, node);
  assert.equal(ops, [
    { op: "delete", cookie: podCookie(id), mask: EXACT_MASK },
    ...podFlows({ id, port: 7, ip: "10.244.1.5", mac: a.mac, segment: 200 }, node).map((flow) => ({ op: "add" as const, flow })),
    ...segmentFlows(200).map((flow) => ({ op: "add" as const, flow })),
    { op: "delete", cookie: segmentCookie(100), mask: EXACT_MASK },
  ]);
});

test("relabel: the old segment's flow stays while another port (any network) uses it", () => {
  const ports = [port("a", att("a")), port("o", att("o", { network: "other", podNamespace: "z" }))];
  const moves = relabelMoves(ports, "podnet", { x: 200 }).map((m) => ({ ...m, ofport: 7 }));
  const ops = relabelFlowOps(moves, ports, { gateway: 2, gatewayMAC: "0a:58:00:00:00:01" });
  assert.not.ok(ops.some((o) => o.op === "delete" && o.cookie === segmentCookie(100)));
  assert.equal(relabelFlowOps([], ports, { gateway: 2, gatewayMAC: "0a:58:00:00:00:01" }), []);
});

test("a pinned segment (OVSPLANE_SEGMENT) is tagged and read back; other attachments carry no source tag", () => {
  const pinned = att("p", { segmentPinned: true });
  assert.is(encodeTags(pinned)[Tag.SegmentSource], "pinned");
  assert.equal(decodeTags("veth-p", encodeTags(pinned)), pinned);
  assert.is(encodeTags(att("a"))[Tag.SegmentSource], undefined);
  assert.is(decodeTags("veth-a", encodeTags(att("a")))!.segmentPinned, undefined);
});

test("--gc-grace: seconds to ms; negative or not a number refused", () => {
  assert.is(gcGraceMs(30), 30_000);
  assert.is(gcGraceMs(0.5), 500);
  assert.throws(() => gcGraceMs(-1), /--gc-grace/);
  assert.throws(() => gcGraceMs(Number.NaN), /--gc-grace/);
});

test.run();
