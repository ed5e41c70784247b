// Unit tests of a static ADD's node-wide flows: the fingerprint that lets it skip reading them back, and the decision.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { nodeFlows } from "../../lib/dataplane/builders.ts";
import { CookieKind, NODE_COOKIE, parseCookie } from "../../lib/dataplane/pipeline.ts";
import { defaultsHold, desiredNodeFlows, networkFlowsFingerprint, type NodeModel } from "../../lib/dataplane/model.ts";
import type { Flow, FlowOp } from "../../lib/ovs/flow.ts";
import type { OvsdbClient } from "../../lib/ovs/ovsdb.ts";
import type { Switch } from "../../lib/node/flows.ts";
import type { CookieFilter } from "../../lib/dataplane/model.ts";
import { staticModel } from "../../lib/plugin/plan.ts";
import { applyStaticFlows, flowsKey } from "../../lib/plugin/staticflows.ts";
import { net1Config, NET1_NODE, NET1_POD } from "./helpers.ts";

const cfg = net1Config(1);
const model = staticModel(cfg, NET1_NODE, { tunnel: 1, gateway: 2 }, "10.244.1.1");
const net = model.networks[0]!;
const withNet = (over: Partial<typeof net>, ports = model.ports): NodeModel => ({ ports, networks: [{ ...net, ...over }] });
const peers = (n: number) => Array.from({ length: n }, (_, i) => ({ nodeIP: `198.19.${i >> 8}.${i & 255}`, podCIDR: `10.${i >> 8}.${i & 255}.0/24` }));

test("fingerprint: the same model gives the same fingerprint; a peer, the gateway, an ofport or a global segment change it", () => {
  const fp = networkFlowsFingerprint(model, "net1");
  assert.match(fp, /^[0-9a-f]{16}$/);
  assert.is(networkFlowsFingerprint(staticModel(cfg, NET1_NODE, { tunnel: 1, gateway: 2 }, "10.244.1.1"), "net1"), fp);
  const changed = [
    withNet({ peers: [...net.peers, { nodeIP: "198.18.0.9", podCIDR: "10.244.9.0/24" }] }),
    withNet({ peers: [{ ...net.peers[0]!, podCIDR: "10.244.7.0/24" }] }),
    withNet({ gatewayIP: "10.244.1.254" }),
    withNet({ globalSegments: [5] }),
    withNet({}, { ...model.ports, tunnel: 3 }),
    withNet({}, { ...model.ports, gatewayMAC: "0a:58:0a:f4:01:99" }),
  ];
  for (const m of changed) assert.is.not(networkFlowsFingerprint(m, "net1"), fp);
});

test("fingerprint: with 1,000 peers every one counts, and none is built into flows", () => {
  const many = withNet({ peers: peers(1000) });
  const fp = networkFlowsFingerprint(many, "net1");
  const oneOff = withNet({ peers: [...peers(999), { nodeIP: "198.19.3.231", podCIDR: "10.3.232.0/24" }] });
  assert.is.not(networkFlowsFingerprint(oneOff, "net1"), fp, "the last peer's range counts");
});

test("defaultsHold: as many pipeline defaults as the model has hold; one missing or a flush does not; an ofport change is the fingerprint's", () => {
  const n = nodeFlows(model.ports).length;
  assert.ok(defaultsHold(model.ports, n));
  assert.not.ok(defaultsHold(model.ports, n - 1), "one missing");
  assert.not.ok(defaultsHold(model.ports, 0), "flushed");
  assert.is.not(networkFlowsFingerprint({ ...model, ports: { ...model.ports, gateway: 7 } }, "net1"), networkFlowsFingerprint(model, "net1"), "an ofport changed");
});

/** A switch holding flows in memory, recording what was read and written; a client recording transactions. */
function fakes(flows: Flow[]) {
  const reads: CookieFilter[][] = [];
  const bundles: FlowOp[][] = [];
  const sw = {
    read: async (filters: readonly CookieFilter[]) => {
      reads.push([...filters]);
      return flows.filter((f) => filters.some((x) => (f.cookie & x.mask) === (x.cookie & x.mask)));
    },
    count: async (filters: readonly CookieFilter[]) => {
      reads.push([...filters]);
      return flows.filter((f) => filters.some((x) => (f.cookie & x.mask) === (x.cookie & x.mask))).length;
    },
    apply: async (ops: readonly FlowOp[]) => void bundles.push([...ops]),
  } as unknown as Switch;
  const txns: unknown[] = [];
  const client = { transact: async (ops: unknown[]) => (txns.push(ops), ops.map(() => ({}))) } as unknown as OvsdbClient;
  return { sw, client, reads, bundles, txns };
}

const kinds = (ops: FlowOp[]) => [...new Set(ops.map((o) => (o.op === "delete" ? -1 : parseCookie(o.flow.cookie)!.kind)))].sort();

test("applyStaticFlows: fingerprint and defaults hold: only the defaults are counted, only the pod's and segment's flows written", async () => {
  const many = withNet({ peers: peers(1000) });
  const f = fakes(desiredNodeFlows(many));
  await applyStaticFlows({ client: f.client, sw: f.sw, cfg, model: many, pod: NET1_POD, ids: { [flowsKey("net1")]: networkFlowsFingerprint(many, "net1") } });
  assert.equal(f.reads, [[{ cookie: NODE_COOKIE, mask: (1n << 64n) - 1n }]]);
  assert.is(f.bundles.length, 1);
  assert.equal(kinds(f.bundles[0]!), [CookieKind.Segment, CookieKind.Pod].sort());
  assert.is(f.txns.length, 0, "nothing recorded again");
});

test("applyStaticFlows: no fingerprint, or defaults flushed: the scope is read back, differences written, the fingerprint recorded", async () => {
  const fp = networkFlowsFingerprint(model, "net1");
  for (const [what, flows, ids] of [
    ["fresh bridge", [], {}],
    ["stale fingerprint", desiredNodeFlows(model), { [flowsKey("net1")]: "0000000000000000" }],
    ["defaults flushed", desiredNodeFlows(model).filter((x) => x.cookie !== NODE_COOKIE), { [flowsKey("net1")]: fp }],
  ] as const) {
    const f = fakes([...flows]);
    await applyStaticFlows({ client: f.client, sw: f.sw, cfg, model, pod: NET1_POD, ids });
    assert.ok(f.reads.some((r) => r.length > 1), `${what}: the network's scope read back`);
    const written = f.bundles.flat();
    assert.ok(written.some((o) => o.op === "add" && parseCookie(o.flow.cookie)!.kind === CookieKind.Pod), `${what}: pod flows`);
    if (what !== "stale fingerprint") assert.ok(written.some((o) => o.op === "add" && o.flow.cookie === NODE_COOKIE), `${what}: defaults written`);
    assert.ok(JSON.stringify(f.txns).includes(fp), `${what}: fingerprint recorded`);
  }
});

test.run();
