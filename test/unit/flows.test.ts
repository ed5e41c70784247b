// Unit tests of the flow pipeline: golden ADD bundle, cookie layout, builders, node model and reconcile by difference.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { nodeFlows, peerFlows, podFlows, routeFlows, segmentFlows } from "../../lib/dataplane/builders.ts";
import {
  cookie, COOKIE_MAGIC, CookieKind, EXACT_MASK, gatewayCookie, KIND_MASK, NETWORK_KIND_MASK, NODE_COOKIE, parseCookie, peerCookie, podCookie,
  routeCookie, segmentCookie, Table,
} from "../../lib/dataplane/pipeline.ts";
import { desiredNodeFlows, diffFlows, networkReconcile, slicedNodeDiff, type NodeModel } from "../../lib/dataplane/model.ts";
import { ipv4, type Flow, type FlowOp } from "../../lib/ovs/flow.ts";
import { flowKey, hex, renderBundle, renderFlow } from "../../lib/ovs/flow-text.ts";
import { networkId } from "../../lib/dataplane/names.ts";
import { addFlowOps, staticModel } from "../../lib/plugin/plan.ts";
import { net1Config, NET1_NODE, NET1_POD } from "./helpers.ts";

const GOLDEN = fileURLToPath(new URL("./golden/flows-reconcile.txt", import.meta.url));

const cfg = net1Config(1);
const GW_MAC = "0a:58:0a:f4:01:01";
const pod = NET1_POD;
const netId = networkId("net1");
const model = staticModel(cfg, NET1_NODE, { tunnel: 1, gateway: 2 }, "10.244.1.1");
const PORTS = { tunnel: 1, gateway: 2, gatewayMAC: GW_MAC };
const addsOf = (ops: FlowOp[]) => ops.flatMap((o) => (o.op === "add" ? [o.flow] : []));
const kindOf = (f: Flow) => parseCookie(f.cookie)!.kind;

/** A two-network model: net1 (peer .2) and net2 (peers .2 and .3) on one bridge. */
const twoNets: NodeModel = {
  ports: { tunnel: 1, gateway: 2, gatewayMAC: GW_MAC },
  networks: [
    { name: "net1", gatewayIP: "10.244.1.1", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }], globalSegments: [1] },
    {
      name: "net2", gatewayIP: "10.245.1.1", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.245.2.0/24" }, { nodeIP: "198.18.0.3", podCIDR: "10.245.3.0/24" }],
      globalSegments: [],
    },
  ],
};

test("golden: the ADD bundle of net1 with one peer and one pod on a fresh bridge", () => {
  const text = renderBundle(addFlowOps({ cfg, model, current: [], pod }));
  if (process.env.UPDATE_GOLDEN === "1") writeFileSync(GOLDEN, text);
  const golden = readFileSync(GOLDEN, "utf8");
  const got = text.split("\n");
  const want = golden.split("\n");
  for (let i = 0; i < Math.max(got.length, want.length); i++) assert.is(got[i], want[i], `line ${i + 1}`);
  assert.is(text, golden);
});

test("ADD on a node whose node-wide flows are right writes only the segment and pod flows", () => {
  const current = desiredNodeFlows(model);
  const ops = addFlowOps({ cfg, model, current, pod });
  assert.ok(ops.every((o) => o.op === "add"));
  assert.equal(addsOf(ops).map(kindOf).sort(), [CookieKind.Segment, ...Array(7).fill(CookieKind.Pod)].sort());
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
  assert.is(cookie(CookieKind.Node, 1n << 40n), cookie(CookieKind.Node, 0n));
});

test("parseCookie round trip, and foreign cookies are not ours", () => {
  for (const c of [NODE_COOKIE, segmentCookie(100), peerCookie(ipv4("198.18.0.2")), podCookie((1n << 40n) - 1n), gatewayCookie(netId), routeCookie(netId, 5n)]) {
    const p = parseCookie(c)!;
    assert.is(cookie(p.kind as 1, p.id), c);
  }
  assert.equal(parseCookie(routeCookie(netId, ipv4("198.18.0.2"))), { kind: CookieKind.Route, id: (netId << 32n) | 0xc6120002n });
  assert.is(parseCookie(0n), undefined);
  assert.is(parseCookie(0x1234n), undefined);
  assert.is(parseCookie(EXACT_MASK), undefined);
});

test("masks select exactly what they say", () => {
  const matches = (c: bigint, sel: bigint, mask: bigint) => (c & mask) === (sel & mask);
  assert.is(KIND_MASK, 0xffffff0000000000n);
  assert.is(NETWORK_KIND_MASK, 0xffffffff00000000n);
  const other = (netId + 1n) & 0xffn;
  assert.ok(matches(podCookie(0x1234n), podCookie(0n), KIND_MASK));
  assert.not.ok(matches(segmentCookie(100), podCookie(0n), KIND_MASK));
  assert.ok(matches(routeCookie(netId, ipv4("198.18.0.2")), routeCookie(netId, 0n), NETWORK_KIND_MASK));
  assert.not.ok(matches(routeCookie(other, ipv4("198.18.0.2")), routeCookie(netId, 0n), NETWORK_KIND_MASK));
  assert.not.ok(matches(gatewayCookie(other), gatewayCookie(netId), NETWORK_KIND_MASK));
});

test("podFlows: seven flows, all with the pod's cookie, one per table it touches", () => {
  const f = podFlows(pod, PORTS);
  for (const x of f) assert.is(x.cookie, podCookie(pod.id));
  // classifier (its port; the gateway with its source address), guard (ip + arp), ARP answer, from node, L3
  assert.equal(f.map((x) => x.table), [Table.Classifier, Table.Classifier, Table.SpoofGuard, Table.SpoofGuard, Table.ArpResponder, Table.FromNode, Table.L3Forwarding]);
});

test("segmentFlows: one bridge-wide flow per segment, the same whichever network writes it", () => {
  for (const s of [1, 100, 200, 16777215]) {
    const [f, ...rest] = segmentFlows(s);
    assert.is(rest.length, 0);
    assert.is(f!.table, Table.SegmentCheck);
    assert.is(renderFlow(f!), `table=40,priority=200,cookie=${hex(segmentCookie(s))},reg0=${s},reg1=${s} actions=output:NXM_NX_REG2[]`);
  }
  assert.is.not(segmentFlows(100)[0]!.cookie, segmentFlows(200)[0]!.cookie);
});

test("peers: tunnel acceptance is bridge-wide, routes are per network", () => {
  const [acc] = peerFlows("198.18.0.2", 1);
  assert.is(renderFlow(acc!), `table=0,priority=200,cookie=${hex(peerCookie(0xc6120002n))},in_port=1,tun_src=198.18.0.2 actions=move:NXM_NX_TUN_ID[0..23]->NXM_NX_REG0[0..23],goto_table:27`);
  const r = routeFlows(netId, { nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, PORTS).find((x) => x.table === Table.L3Forwarding);
  assert.is(renderFlow(r!), `table=30,priority=100,cookie=${hex(routeCookie(netId, 0xc6120002n))},ip,nw_dst=10.244.2.0/24 actions=move:NXM_NX_REG0[0..23]->NXM_NX_TUN_ID[0..23],set_field:198.18.0.2->tun_dst,goto_table:31`);
});

test("desiredNodeFlows of two networks: no two flows share table, priority and match; one acceptance per peer", () => {
  const all = [...desiredNodeFlows(twoNets), ...segmentFlows(100), ...podFlows(pod, PORTS)];
  const seen = new Map<string, string>();
  for (const f of all) {
    assert.not.ok(seen.has(flowKey(f)), `${renderFlow(f)} duplicates ${seen.get(flowKey(f))}`);
    seen.set(flowKey(f), renderFlow(f));
  }
  assert.is(all.filter((f) => kindOf(f) === CookieKind.Peer).length, 2);
  assert.is(all.filter((f) => kindOf(f) === CookieKind.Route).length, 3 * 3, "per route: no spoofed peer source from the node, ARP for the range, the route");
  assert.is(all.filter((f) => kindOf(f) === CookieKind.Global).length, 2, "a global segment: from it, and to it");
  assert.is(all.filter((f) => kindOf(f) === CookieKind.Node).length, nodeFlows(twoNets.ports).length);
});

test("diffFlows: right flows untouched, changed ones replaced, unwanted ones deleted exactly", () => {
  const want = desiredNodeFlows(model);
  assert.equal(diffFlows(want, want), []);
  const changed: Flow = { ...want[0]!, actions: [] };
  const extra: Flow = routeFlows(netId, { nodeIP: "198.18.0.9", podCIDR: "10.244.9.0/24" }, PORTS)[0]!;
  const ops = diffFlows([changed, ...want.slice(1), extra], want);
  assert.equal(ops, [{ op: "add", flow: want[0]! }, { op: "delete_strict", flow: extra }]);
});

test("networkReconcile: one network's reconcile leaves another's routes, and the peers they use, alone", () => {
  const current = desiredNodeFlows(twoNets); // both networks programmed
  // net1 alone (its own model) wants nothing changed: net2's routes and peer .3 stay
  const net1Only: NodeModel = { ...twoNets, networks: [twoNets.networks[0]!] };
  assert.equal(networkReconcile(net1Only, "net1", current), []);
  // net2 drops peer .3: its route goes, and so does the acceptance of .3 (no network routes to it)
  const net2Less: NodeModel = { ...twoNets, networks: [{ ...twoNets.networks[1]!, peers: [twoNets.networks[1]!.peers[0]!] }] };
  const ops = networkReconcile(net2Less, "net2", current);
  assert.equal(ops.map((o) => (o.op === "delete_strict" ? `${parseCookie(o.flow.cookie)!.kind}` : o.op)).sort(), [`${CookieKind.Peer}`, ...Array(3).fill(`${CookieKind.Route}`)]);
  // net1 drops peer .2: its route goes, the acceptance of .2 stays (net2 still routes to it)
  const net1Less: NodeModel = { ...twoNets, networks: [{ ...twoNets.networks[0]!, peers: [] }] };
  const ops1 = networkReconcile(net1Less, "net1", current);
  assert.equal(ops1.map((o) => o.op), ["delete_strict", "delete_strict", "delete_strict"]);
  for (const o of ops1) assert.is(parseCookie((o as { flow: Flow }).flow.cookie)!.kind, CookieKind.Route);
});

test("renderFlow and renderBundle formats", () => {
  const f = segmentFlows(100)[0]!;
  assert.is(renderFlow(f), "table=40,priority=200,cookie=0x6f76020000000064,reg0=100,reg1=100 actions=output:NXM_NX_REG2[]");
  const miss: Flow = { table: 0, priority: 0, cookie: 0x6f76010000000000n, match: {}, actions: [] };
  assert.is(renderFlow(miss), "table=0,priority=0,cookie=0x6f76010000000000 actions=drop");
  assert.is(
    renderBundle([{ op: "delete", cookie: 0x6f76040000001234n, mask: EXACT_MASK }, { op: "add", flow: miss }, { op: "delete_strict", flow: f }]),
    "flow delete cookie=0x6f76040000001234/0xffffffffffffffff\nflow add table=0,priority=0,cookie=0x6f76010000000000 actions=drop\n" +
      "flow delete_strict table=40,priority=200,cookie=0x6f76020000000064/-1,reg0=100,reg1=100\n",
  );
});

test("slicedNodeDiff: the same changes as one diffFlows of the whole model, a slice of peers at a time", () => {
  const peers = (n: number, from = 0) => Array.from({ length: n }, (_, i) => ({ nodeIP: `198.19.0.${from + i + 1}`, podCIDR: `10.9.${from + i}.0/24` }));
  const model = (p: NodeModel["networks"][number]["peers"], gatewayIP = "10.250.0.1"): NodeModel => ({
    ports: { tunnel: 1, gateway: 2, gatewayMAC: "00:00:00:00:00:01" },
    networks: [{ name: "podnet", gatewayIP, peers: p, globalSegments: [7] }],
  });
  const text = (ops: readonly FlowOp[]) => ops.map((o) => `${o.op} ${"flow" in o ? renderFlow(o.flow) : ""}`).sort();
  const cases: [NodeModel, NodeModel][] = [
    [model([]), model(peers(10))], // the first sync
    [model(peers(10)), model(peers(12, 3))], // peers gone, new, kept
    [model(peers(5)), model([], "10.250.0.9")], // every peer gone, another gateway
    [model(peers(4)), model(peers(4))], // nothing to do
  ];
  for (const [from, to] of cases) {
    const current = desiredNodeFlows(from);
    const slices = [...slicedNodeDiff(current, to, 3)];
    assert.equal(text(slices.flat()), text(diffFlows(current, desiredNodeFlows(to))));
  }
  const first = [...slicedNodeDiff([], model(peers(10)), 3)];
  assert.equal(first.length, 5, "four slices of at most 3 peers, then the deletions");
  assert.ok(first.slice(1, 4).every((ops) => ops.length <= 3 * 4), "later slices carry only their peers' flows");
});

test.run();
