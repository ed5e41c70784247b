// Unit tests of the flow pipeline: golden bundle text, cookie layout, builders' counts, op order.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { nodeFlows, peerFlows, podFlows, segmentFlows, ipv4ToBigInt } from "../../lib/dataplane/builders.ts";
import {
  cookie,
  COOKIE_MAGIC,
  CookieKind,
  EXACT_MASK,
  hex,
  KIND_MASK,
  NETWORK_KIND_MASK,
  nodeCookie,
  parseCookie,
  peerCookie,
  podCookie,
  segmentCookie,
  Table,
  type Flow,
  type FlowOp,
} from "../../lib/dataplane/pipeline.ts";
import { renderBundle, renderFlow } from "../../lib/dataplane/render.ts";
import { POD_FLOW_COUNT } from "../../lib/plugin/check.ts";
import { parseConfig } from "../../lib/plugin/config.ts";
import { networkId } from "../../lib/dataplane/names.ts";
import { reconcileFlowOps } from "../../lib/plugin/plan.ts";
import { net1Config, NET1_NODE, NET1_POD } from "./helpers.ts";

const GOLDEN = fileURLToPath(new URL("./golden/flows-reconcile.txt", import.meta.url));

const cfg = net1Config(1);
const GW_MAC = "0a:58:0a:f4:01:01";
const node = NET1_NODE;
const pod = NET1_POD;
const netId = networkId("net1");

function ops(withPod = true): FlowOp[] {
  return reconcileFlowOps({ cfg, node, ofports: { tunnel: 1, gateway: 2 }, gatewayIP: "10.244.1.1", ...(withPod ? { pod } : {}) });
}

test("golden: the reconcile bundle of net1 with one peer and one pod", () => {
  const text = renderBundle(ops());
  if (process.env.UPDATE_GOLDEN === "1") writeFileSync(GOLDEN, text);
  const golden = readFileSync(GOLDEN, "utf8");
  // Line by line first, for a readable failure.
  const got = text.split("\n");
  const want = golden.split("\n");
  for (let i = 0; i < Math.max(got.length, want.length); i++) assert.is(got[i], want[i], `line ${i + 1}`);
  assert.is(text, golden);
});

test("network id of net1 is stable and 8-bit", () => {
  assert.is(netId, networkId("net1"));
  assert.ok(netId >= 0n && netId < 256n);
  assert.is.not(networkId("net1"), networkId("net2")); // true for these two names, not in general
});

test("cookie layout: magic in 48..63, kind in 40..47, id in 0..39", () => {
  const c = cookie(CookieKind.Pod, 0xabcdef0123n);
  assert.is(c >> 48n, COOKIE_MAGIC);
  assert.is(COOKIE_MAGIC, 0x6f76n);
  assert.is((c >> 40n) & 0xffn, 4n);
  assert.is(c & ((1n << 40n) - 1n), 0xabcdef0123n);
  assert.is(hex(c), "0x6f7604abcdef0123");
  // ids wider than 40 bits are cut, never spill into the kind
  assert.is(cookie(CookieKind.Node, 1n << 40n), COOKIE_MAGIC << 48n | 1n << 40n);
});

test("parseCookie round trip, and foreign cookies are not ours", () => {
  for (const [kind, id] of [
    [CookieKind.Node, 0n],
    [CookieKind.Segment, (netId << 32n) | 100n],
    [CookieKind.Peer, (netId << 32n) | ipv4ToBigInt("198.18.0.2")],
    [CookieKind.Pod, (1n << 40n) - 1n],
  ] as const) {
    assert.equal(parseCookie(cookie(kind, id)), { kind, id });
  }
  assert.is(parseCookie(0n), undefined);
  assert.is(parseCookie(0x1234n), undefined);
  assert.is(parseCookie(EXACT_MASK), undefined);
});

test("masks select exactly what they say", () => {
  const matches = (c: bigint, sel: bigint, mask: bigint) => (c & mask) === (sel & mask);
  assert.is(KIND_MASK, 0xffffff0000000000n);
  assert.is(NETWORK_KIND_MASK, 0xffffffff00000000n);
  const other = (netId + 1n) & 0xffn;
  // KIND_MASK: every pod cookie, no other kind
  assert.ok(matches(podCookie(0x1234n), podCookie(0n), KIND_MASK));
  assert.ok(matches(podCookie((1n << 40n) - 1n), podCookie(0n), KIND_MASK));
  assert.not.ok(matches(segmentCookie(netId, 100), podCookie(0n), KIND_MASK));
  assert.not.ok(matches(nodeCookie(netId), podCookie(0n), KIND_MASK));
  // NETWORK_KIND_MASK: one network's peers, not another network's, not other kinds
  assert.ok(matches(peerCookie(netId, ipv4ToBigInt("198.18.0.2")), peerCookie(netId, 0n), NETWORK_KIND_MASK));
  assert.ok(matches(peerCookie(netId, ipv4ToBigInt("255.255.255.255")), peerCookie(netId, 0n), NETWORK_KIND_MASK));
  assert.not.ok(matches(peerCookie(other, ipv4ToBigInt("198.18.0.2")), peerCookie(netId, 0n), NETWORK_KIND_MASK));
  assert.not.ok(matches(segmentCookie(netId, 0), peerCookie(netId, 0n), NETWORK_KIND_MASK));
  // EXACT_MASK: one network's node flows only
  assert.ok(matches(nodeCookie(netId), nodeCookie(netId), EXACT_MASK));
  assert.not.ok(matches(nodeCookie(other), nodeCookie(netId), EXACT_MASK));
  // a network's ids
  assert.equal(parseCookie(segmentCookie(netId, 100)), { kind: CookieKind.Segment, id: (netId << 32n) | 100n });
  assert.equal(parseCookie(segmentCookie(netId, 16777215)), { kind: CookieKind.Segment, id: (netId << 32n) | 16777215n });
  assert.equal(parseCookie(nodeCookie(netId)), { kind: CookieKind.Node, id: netId << 32n });
});

test("ipv4ToBigInt", () => {
  assert.is(ipv4ToBigInt("198.18.0.2"), 0xc6120002n);
  assert.is(ipv4ToBigInt("0.0.0.0"), 0n);
  assert.is(ipv4ToBigInt("255.255.255.255"), 0xffffffffn);
});

test("podFlows: POD_FLOW_COUNT flows, all with the pod's cookie", () => {
  assert.is(POD_FLOW_COUNT, 6);
  const f = podFlows(pod, GW_MAC);
  assert.is(f.length, POD_FLOW_COUNT);
  for (const x of f) assert.is(x.cookie, podCookie(pod.id));
  // per pod, every table it touches: classifier, guard (ip + arp), ARP answer, from node, L3
  assert.equal(f.map((x) => x.table), [Table.Classifier, Table.SpoofGuard, Table.SpoofGuard, Table.ArpResponder, Table.FromNode, Table.L3Forwarding]);
});

test("segmentFlows: one flow per segment, keyed by it", () => {
  for (const s of [1, 100, 200, 16777215]) {
    const f = segmentFlows(netId, s);
    assert.is(f.length, 1);
    assert.is(f[0]!.table, Table.SegmentCheck);
    assert.equal(f[0]!.match, [`reg0=${s}`, `reg1=${s}`]);
    assert.equal(f[0]!.actions, ["output:NXM_NX_REG2[]"]);
    assert.is(f[0]!.cookie, segmentCookie(netId, s));
  }
  assert.is.not(segmentFlows(netId, 100)[0]!.cookie, segmentFlows(netId, 200)[0]!.cookie);
});

test("peer flows: one per peer, each with its own cookie", () => {
  const c2 = parseConfig({
    cniVersion: "1.1.0",
    name: "net1",
    type: "ovsplane",
    peers: [
      { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" },
      { nodeIP: "198.18.0.3", podCIDR: "10.244.3.0/24" },
      { nodeIP: "198.18.0.4", podCIDR: "10.244.4.0/24" },
    ],
    ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.244.1.0/24" }]] },
  });
  const all = reconcileFlowOps({ cfg: c2, node, ofports: { tunnel: 1, gateway: 2 }, gatewayIP: "10.244.1.1" });
  const adds = all.flatMap((o) => (o.op === "add" ? [o.flow] : []));
  const peerAdds = adds.filter((f) => parseCookie(f.cookie)?.kind === CookieKind.Peer);
  assert.is(peerAdds.length, 6, "a classifier and a forwarding flow per peer");
  const peers = peerAdds.filter((f) => f.table === 30);
  for (const [i, p] of c2.peers.entries()) {
    const f = peers[i]!;
    const cls = peerAdds.find((x) => x.table === 0 && x.match.includes(`tun_src=${p.nodeIP}`));
    assert.ok(cls, `tunnel accepted from ${p.nodeIP}`);
    assert.is(cls!.cookie, f.cookie);
    assert.is(f.cookie, peerCookie(netId, ipv4ToBigInt(p.nodeIP)));
    assert.equal(f.match, ["ip", `nw_dst=${p.podCIDR}`]);
    assert.ok(f.actions.includes(`set_field:${p.nodeIP}->tun_dst`));
    assert.is(f.actions[f.actions.length - 1], "output:1");
    assert.equal(peerFlows(netId, p, 1), [cls!, f]);
  }
  // without a pod: no segment and no pod flows
  assert.not.ok(adds.some((f) => [CookieKind.Segment, CookieKind.Pod].includes(parseCookie(f.cookie)!.kind as 2 | 4)));
});

test("bundle order: each delete comes before the adds it replaces", () => {
  const o = ops();
  const firstAdd = (kind: number) => o.findIndex((x) => x.op === "add" && parseCookie(x.flow.cookie)?.kind === kind);
  const del = (kind: number) => o.findIndex((x) => x.op === "delete" && parseCookie(x.cookie)?.kind === kind);
  assert.ok(del(CookieKind.Node) >= 0 && del(CookieKind.Node) < firstAdd(CookieKind.Node));
  assert.ok(del(CookieKind.Peer) >= 0 && del(CookieKind.Peer) < firstAdd(CookieKind.Peer));
  // no delete of segment or pod flows here (other pods share the segment flow)
  assert.is(del(CookieKind.Segment), -1);
  assert.is(del(CookieKind.Pod), -1);
  // every add of the node and peer kinds lies after its delete
  for (const [i, x] of o.entries()) {
    if (x.op !== "add") continue;
    const k = parseCookie(x.flow.cookie)!.kind;
    if (k === CookieKind.Node || k === CookieKind.Peer) assert.ok(i > del(k), `op ${i}`);
  }
  const text = renderBundle(o).split("\n");
  assert.ok(text[0]!.startsWith("flow delete cookie="));
  assert.is(text[text.length - 1], "", "ends with a newline");
});

test("counts in the reconcile bundle", () => {
  const o = ops();
  const kinds = o.flatMap((x) => (x.op === "add" ? [parseCookie(x.flow.cookie)!.kind] : []));
  const count = (k: number) => kinds.filter((x) => x === k).length;
  assert.is(count(CookieKind.Node), nodeFlows({ netId, tunnelPort: 1, gatewayPort: 2, gatewayIP: "10.244.1.1", gatewayMAC: GW_MAC }).length);
  assert.is(count(CookieKind.Peer), 2);
  assert.is(count(CookieKind.Segment), 1);
  assert.is(count(CookieKind.Pod), POD_FLOW_COUNT);
  assert.is(o.filter((x) => x.op === "delete").length, 2);
});

test("no two flows of the bundle share table, priority and match (they would replace each other)", () => {
  const adds = ops().flatMap((o) => (o.op === "add" ? [o.flow] : []));
  const key = (f: Flow) => `${f.table}/${f.priority}/${[...f.match].sort().join(",")}`;
  const seen = new Map<string, string>();
  for (const f of adds) {
    const k = key(f);
    assert.not.ok(seen.has(k), `${renderFlow(f)} duplicates ${seen.get(k)}`);
    seen.set(k, renderFlow(f));
  }
});

test("renderFlow and renderBundle formats", () => {
  const f: Flow = { table: 40, priority: 200, cookie: 0x6f7602aa00000064n, match: ["reg0=100", "reg1=100"], actions: ["output:NXM_NX_REG2[]"] };
  assert.is(renderFlow(f), "table=40,priority=200,cookie=0x6f7602aa00000064,reg0=100,reg1=100 actions=output:NXM_NX_REG2[]");
  const miss: Flow = { table: 0, priority: 0, cookie: 0x6f76010000000000n, match: [], actions: ["drop"] };
  assert.is(renderFlow(miss), "table=0,priority=0,cookie=0x6f76010000000000 actions=drop");
  assert.is(
    renderBundle([{ op: "delete", cookie: 0x6f76040000001234n, mask: EXACT_MASK }, { op: "add", flow: miss }]),
    "flow delete cookie=0x6f76040000001234/0xffffffffffffffff\nflow add table=0,priority=0,cookie=0x6f76010000000000 actions=drop\n",
  );
});

test.run();
