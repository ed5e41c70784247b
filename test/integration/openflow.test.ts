// Integration tests of the native OpenFlow 1.4 client against OVS 3.1: bundles equal ovs-ofctl's, golden read-back, atomic errors, timing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { act, type Flow, type FlowOp } from "../../lib/ovs/flow.ts";
import { flowKey, renderBundle, renderFlow } from "../../lib/ovs/flow-text.ts";
import { applyFlowsNative, dumpFlowsNative, OpenFlowConnection } from "../../lib/ovs/openflow-conn.ts";
import type { FlowEntry } from "../../lib/ovs/openflow.ts";
import { createNode, teardownAll, type SimNode } from "../harness/testbed.ts";
import { expectCode } from "../unit/helpers.ts";
import {
  ALL_ONES, COOKIE, EXTRA_COOKIE, EXTRA_FLOWS, GOLDEN_FLOWS, GOLDEN_OPS, NODE_FLOWS, PEERS_MASK, peerFlows, POD_A, podFlows, segmentFlow, type FixturePod,
} from "../unit/openflow-fixtures.ts";

const t = suite<{ n: SimNode; setupError?: unknown }>("openflow", { n: undefined as unknown as SimNode });

const POD_B: FixturePod = { cookie: 0x6f76040000005678n, port: 6, ip: "10.244.1.6", mac: "0a:58:0a:f4:01:06", segment: 200 };
const SEGMENT_200 = 0x6f760260000000c8n;
const add = (flow: Flow): FlowOp => ({ op: "add", flow });
/** Two bundles: the golden one (node, peer, segment 100, pod A); then node, two peers, segment 200, pod B, and pod A deleted by its cookie. */
const BUNDLES: FlowOp[][] = [
  [...GOLDEN_OPS],
  [
    { op: "delete", cookie: COOKIE.node, mask: ALL_ONES },
    ...NODE_FLOWS.map(add),
    { op: "delete", cookie: COOKIE.peers, mask: PEERS_MASK },
    ...peerFlows("198.18.0.2", "10.244.2.0/24", COOKIE.peer).map(add),
    ...peerFlows("198.18.0.3", "10.244.3.0/24", 0x6f76036cc6120003n).map(add),
    add(segmentFlow(200, SEGMENT_200)),
    ...podFlows(POD_B).map(add),
    { op: "delete", cookie: POD_A.cookie, mask: ALL_ONES },
  ],
];

async function ofctlBundle(n: SimNode, br: string, ops: readonly FlowOp[]): Promise<void> {
  await run(["ovs-ofctl", "-O", "OpenFlow14", "--timeout=5", "bundle", n.ofSocket(br), "-"], { input: renderBundle(ops), env: n.env });
}

/** Every flow of the bridge, sorted, as `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` prints them. */
async function dump(n: SimNode, br: string): Promise<string[]> {
  return (await n.dumpFlows(br)).sort();
}

/** Flows in one order (table, priority, match) to compare sets. */
const sorted = (fs: readonly Flow[]): Flow[] => [...fs].sort((a, b) => a.table - b.table || b.priority - a.priority || flowKey(a).localeCompare(flowKey(b)));
const flowsOf = (es: readonly FlowEntry[]) => sorted(es.map((e) => e.flow));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// uvu swallows an error thrown by before(): keep it and fail every test with it instead.
t.before(async (ctx) => {
  try {
    // Its own netns: a netdev datapath leaves tap devices (ovs-netdev, brA, ...) where ovs-vswitchd runs.
    ctx.n = await createNode({ name: "of", underlayIP: "198.18.0.250" });
    const bridge = (br: string) => ["--", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14"];
    await ctx.n.vsctl(...bridge("brA"), ...bridge("brB"), ...bridge("brC"), ...bridge("brD"));
  } catch (e) {
    ctx.setupError = e;
  }
});

t.before.each((ctx) => {
  if (ctx.setupError) throw ctx.setupError;
});

t.after(() => teardownAll());

t("the same bundles through ovs-ofctl (brA) and natively (brB) leave identical flow tables", async ({ n }) => {
  for (const ops of BUNDLES) {
    await ofctlBundle(n, "brA", ops);
    await applyFlowsNative(n.ofSocket("brB"), ops);
  }
  const [a, b] = [await dump(n, "brA"), await dump(n, "brB")];
  assert.equal(b, a);
  // and they hold what the bundles say: node, two peers, pod B, both segments; pod A deleted by its cookie
  const adds = BUNDLES[1]!.filter((o) => o.op === "add").length;
  assert.is(b.length, adds + 1, "the second bundle's flows and the first's segment 100 flow");
  assert.ok(b.some((l) => l.includes("reg0=0x64,reg1=0x64")) && b.some((l) => l.includes("reg0=0xc8,reg1=0xc8")));
  assert.ok(b.some((l) => l.includes("tun_src=198.18.0.3")));
  assert.ok(b.some((l) => l.includes(`cookie=0x${POD_B.cookie.toString(16)},`)));
  assert.not.ok(b.some((l) => l.includes(`cookie=0x${POD_A.cookie.toString(16)},`)), "pod A deleted");
  assert.not.ok(b.some((l) => l.includes("10.244.1.5")));
});

t("golden read-back: every flow installed through bundle() comes back from dumpFlows() deep-equal, filtered by cookie and table", async ({ n }) => {
  const c = await OpenFlowConnection.connect(n.ofSocket("brC"));
  try {
    await c.bundle([...GOLDEN_OPS, ...EXTRA_FLOWS.map(add)]);
    const all = await c.dumpFlows();
    assert.equal(flowsOf(all), sorted([...GOLDEN_FLOWS, ...EXTRA_FLOWS]));
    for (const { stats } of all) {
      assert.is(typeof stats.packets, "bigint");
      assert.is(typeof stats.bytes, "bigint");
      assert.ok(stats.durationSec >= 0 && stats.durationSec < 60, `duration ${stats.durationSec}`);
    }
    assert.equal(flowsOf(await c.dumpFlows({ cookie: POD_A.cookie })), sorted(podFlows(POD_A)), "one cookie");
    assert.equal(flowsOf(await c.dumpFlows({ cookie: COOKIE.peers, mask: PEERS_MASK })), sorted(peerFlows("198.18.0.2", "10.244.2.0/24", COOKIE.peer)), "cookie family");
    assert.equal(flowsOf(await c.dumpFlows({ table: 20 })), sorted([...GOLDEN_FLOWS, ...EXTRA_FLOWS].filter((f) => f.table === 20)), "one table");
    assert.equal(flowsOf(await c.dumpFlows({ cookie: COOKIE.node, table: 40 })), sorted(NODE_FLOWS.filter((f) => f.table === 40)), "cookie and table");
    assert.equal(await c.dumpFlows({ cookie: 0x1n }), [], "no flow");
    assert.equal(flowsOf(await dumpFlowsNative(n.ofSocket("brC"), { cookie: EXTRA_COOKIE })), sorted(EXTRA_FLOWS), "one-shot wrapper");
  } finally {
    c.close();
  }
});

t("stats: a packet sent through the pipeline is counted on the flow it hit", async ({ n }) => {
  // an ARP request from the controller port: no in_port flow takes it, table 0's priority-0 drop does
  const arp = "ffffffffffff" + "0a580af40109" + "0806" + "0001080006040001" + "0a580af40109" + "0af40109" + "000000000000" + "0af40101";
  await n.ofctl("packet-out", "brC", `in_port=controller packet=${arp} actions=table`);
  const [e] = await dumpFlowsNative(n.ofSocket("brC"), { cookie: COOKIE.node, table: 0 }).then((es) => es.filter((x) => x.flow.priority === 0));
  assert.ok(e, "table 0's drop flow");
  assert.equal(e!.stats.packets, 1n);
  assert.equal(e!.stats.bytes, 42n);
});

t("delete_strict removes exactly one flow: same table and priority with another match stays, another cookie is not touched", async ({ n }) => {
  const sock = n.ofSocket("brC");
  const before = flowsOf(await dumpFlowsNative(sock));
  const gone = NODE_FLOWS[4]!; // table 20, priority 300, arp_op=1 (arp_op=2 shares table, priority and cookie)
  await applyFlowsNative(sock, [{ op: "delete_strict", flow: { ...gone, cookie: 0x1234n } }]);
  assert.equal(flowsOf(await dumpFlowsNative(sock)), before, "a cookie other than the flow's deletes nothing");
  await applyFlowsNative(sock, [{ op: "delete_strict", flow: gone }]);
  const after = flowsOf(await dumpFlowsNative(sock));
  assert.equal(after, before.filter((f) => renderFlow(f) !== renderFlow(gone)));
  assert.is(after.length, before.length - 1);
  assert.ok(after.some((f) => renderFlow(f) === renderFlow(NODE_FLOWS[5]!)), "the arp_op=2 flow stays");
});

t("one connection: bundles and dumps in a row, xids incrementing, echo answered; a flow dump of 1500 flows spans several replies", async ({ n }) => {
  const c = await OpenFlowConnection.connect(n.ofSocket("brD"), { timeoutMs: 5000 });
  try {
    const xids = [c.xid];
    const many = Array.from({ length: 1500 }, (_, i): Flow => ({
      table: 60, priority: 1 + (i % 1000), cookie: 0x6f76dd0000000000n + BigInt(i), match: { reg3: { value: BigInt(i) } }, actions: [act.loadReg(4, i), act.output(1 + (i % 7))],
    }));
    await c.bundle(many.slice(0, 700).map(add));
    xids.push(c.xid);
    assert.is((await c.dumpFlows({ table: 60 })).length, 700);
    xids.push(c.xid);
    await c.bundle(many.slice(700).map(add));
    xids.push(c.xid);
    const rtt = await c.echo();
    xids.push(c.xid);
    assert.ok(rtt >= 0 && rtt < 1000, `echo ${rtt} ms`);
    const all = await c.dumpFlows();
    xids.push(c.xid);
    assert.equal(flowsOf(all), sorted(many), "flow stats replies over 64 KiB joined");
    assert.equal(flowsOf(await c.dumpFlows({ cookie: 0x6f76dd0000000000n, mask: 0xffffffffffffff00n })), sorted(many.slice(0, 256)));
    await c.bundle([{ op: "delete", cookie: 0x6f76dd0000000000n, mask: 0xffffffffff000000n }]);
    assert.equal(await c.dumpFlows(), []);
    assert.equal(xids, [1, 704, 705, 1508, 1509, 1510], "hello; open, 700 adds, barrier, commit; dump; open, 800 adds, barrier, commit; echo; dump");
    console.log(`    echo ${rtt.toFixed(2)} ms; ${all.length} flows dumped on the connection, last xid ${c.xid}`);
  } finally {
    c.close();
  }
});

t("a flow the switch rejects is named, and nothing of the bundle is applied", async ({ n }) => {
  const before = await dump(n, "brB");
  assert.ok(before.length > 0);
  const bad: Flow = { table: 40, priority: 9, cookie: 0x6f76040000009999n, match: {}, actions: [act.goto(30)] }; // backwards
  const ops: FlowOp[] = [
    { op: "delete", cookie: POD_B.cookie, mask: ALL_ONES },
    ...podFlows({ ...POD_A, cookie: 0x6f76040000009999n }).map(add),
    { op: "add", flow: bad },
  ];
  const err = await expectCode(applyFlowsNative(n.ofSocket("brB"), ops), 100, /OFPBIC_BAD_TABLE_ID \(type 3, code 2\)/);
  assert.ok(err.message.includes(`for flow add ${renderFlow(bad)}`), err.message);
  console.log(`    ${err.message}`);
  assert.equal(await dump(n, "brB"), before, "the delete and the good adds of the bundle were not applied");
  // and the switch takes a bundle again right away
  await applyFlowsNative(n.ofSocket("brB"), BUNDLES[1]!);
  assert.equal(await dump(n, "brB"), before);
  // on a long-lived connection too: a rejected bundle, then a good one on the same connection
  const c = await OpenFlowConnection.connect(n.ofSocket("brB"));
  try {
    await expectCode(c.bundle(ops), 100, /OFPBIC_BAD_TABLE_ID/);
    await c.bundle(BUNDLES[1]!);
    assert.equal(await dump(n, "brB"), before);
  } finally {
    c.close();
  }
});

t("a dead or missing socket gives code 11 fast", async ({ n }) => {
  const stale = join(n.runDir, "stale.mgmt"); // a unix socket file nobody listens on
  await run(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
  for (const target of [`unix:${stale}`, `unix:${n.runDir}/missing.mgmt`, "tcp:127.0.0.1:1"]) {
    const t0 = performance.now();
    await expectCode(applyFlowsNative(target, BUNDLES[0]!), 11, /ovs-vswitchd is not available, try again later: .*cannot connect/);
    await expectCode(dumpFlowsNative(target), 11, /cannot connect/);
    assert.ok(performance.now() - t0 < 500, `${target} fails fast`);
  }
  // a connection open while ovs-vswitchd stops: its next exchange is code 11, not a hang; then the socket refuses
  const c = await OpenFlowConnection.connect(n.ofSocket("brB"));
  try {
    await n.stopVswitchd();
    await expectCode(c.dumpFlows(), 11, /connection closed|ECONNRESET|EPIPE/);
    await expectCode(applyFlowsNative(n.ofSocket("brB"), BUNDLES[0]!), 11, /cannot connect/);
  } finally {
    c.close();
    await n.startVswitchd();
  }
});

t("timing: 20 native bundles vs 20 ovs-ofctl bundles of the golden ops; 20 native dumps vs 20 ovs-ofctl dumps", async ({ n }) => {
  const ops = BUNDLES[0]!;
  const native: number[] = [];
  const ofctl: number[] = [];
  const dumpNative: number[] = [];
  const dumpOfctl: number[] = [];
  for (let i = 0; i < 20; i++) {
    let t0 = performance.now();
    await applyFlowsNative(n.ofSocket("brB"), ops);
    native.push(performance.now() - t0);
    t0 = performance.now();
    await ofctlBundle(n, "brA", ops);
    ofctl.push(performance.now() - t0);
    t0 = performance.now();
    await dumpFlowsNative(n.ofSocket("brB"), { cookie: POD_A.cookie });
    dumpNative.push(performance.now() - t0);
    t0 = performance.now();
    await n.dumpFlows("brA");
    dumpOfctl.push(performance.now() - t0);
  }
  console.log(`    ${ops.length} ops per bundle, median of 20: native ${median(native).toFixed(2)} ms, ovs-ofctl ${median(ofctl).toFixed(2)} ms`);
  console.log(`    flow dump, median of 20: native ${median(dumpNative).toFixed(2)} ms, ovs-ofctl ${median(dumpOfctl).toFixed(2)} ms`);
  assert.equal(await dump(n, "brB"), await dump(n, "brA"));
});

t.run();
