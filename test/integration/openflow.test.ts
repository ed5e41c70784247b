// Integration tests of lib/ovs/openflow.ts: the native bundle gives the same flows as ovs-ofctl's, atomic errors, timing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { run } from "../../lib/host/exec.ts";
import { podFlows, type PodFlowSpec } from "../../lib/dataplane/builders.ts";
import { applyFlowsNative } from "../../lib/ovs/openflow.ts";
import { EXACT_MASK, podCookie, type Flow, type FlowOp } from "../../lib/dataplane/pipeline.ts";
import { renderBundle, renderFlow } from "../../lib/dataplane/render.ts";
import { reconcileFlowOps } from "../../lib/plugin/plan.ts";
import { createNode, teardownAll, type SimNode } from "../harness/testbed.ts";
import { expectCode, net1Config, NET1_NODE, NET1_POD } from "../unit/helpers.ts";

const t = suite<{ n: SimNode; setupError?: unknown }>("openflow", { n: undefined as unknown as SimNode });

const cfg = net1Config(2);
const node = NET1_NODE;
const podA = NET1_POD;
const podB: PodFlowSpec = { id: 0x5678n, port: 6, ip: "10.244.1.6", mac: "0a:58:0a:f4:01:06", segment: 200 };
const reconcile = (pod: PodFlowSpec) => reconcileFlowOps({ cfg, node, ofports: { tunnel: 1, gateway: 2 }, gatewayIP: "10.244.1.1", pod });
/** Two bundles: node, peers and pod A; then everything again with pod B, and pod A deleted by its cookie. */
const BUNDLES: FlowOp[][] = [reconcile(podA), [...reconcile(podB), { op: "delete", cookie: podCookie(podA.id), mask: EXACT_MASK }]];

async function ofctlBundle(n: SimNode, br: string, ops: readonly FlowOp[]): Promise<void> {
  await run(["ovs-ofctl", "-O", "OpenFlow14", "--timeout=5", "bundle", n.ofSocket(br), "-"], { input: renderBundle(ops), env: n.env });
}

/** Every flow of the bridge, sorted, as `ovs-ofctl -O OpenFlow13 --no-stats dump-flows` prints them. */
async function dump(n: SimNode, br: string): Promise<string[]> {
  return (await n.dumpFlows(br)).sort();
}


const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// uvu swallows an error thrown by before(): keep it and fail every test with it instead.
t.before(async (ctx) => {
  try {
    // Its own netns: a netdev datapath leaves tap devices (ovs-netdev, brA, brB) where ovs-vswitchd runs.
    ctx.n = await createNode({ name: "of", underlayIP: "198.18.0.250" });
    const bridge = (br: string) => ["--", "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure", "protocols=OpenFlow13,OpenFlow14"];
    await ctx.n.vsctl(...bridge("brA"), ...bridge("brB"));
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
  assert.ok(b.some((l) => l.includes(`cookie=0x${podCookie(podB.id).toString(16)},`)));
  assert.not.ok(b.some((l) => l.includes(`cookie=0x${podCookie(podA.id).toString(16)},`)), "pod A deleted");
  assert.not.ok(b.some((l) => l.includes("10.244.1.5")));
});

t("a flow the switch rejects is named, and nothing of the bundle is applied", async ({ n }) => {
  const before = await dump(n, "brB");
  assert.ok(before.length > 0);
  const bad: Flow = { table: 40, priority: 9, cookie: podCookie(0x9999n), match: [], actions: ["goto_table:30"] }; // backwards
  const ops: FlowOp[] = [
    { op: "delete", cookie: podCookie(podB.id), mask: EXACT_MASK },
    ...podFlows({ ...podA, id: 0x9999n }, node.gateway.mac).map((flow) => ({ op: "add" as const, flow })),
    { op: "add", flow: bad },
  ];
  const err = await expectCode(applyFlowsNative(n.ofSocket("brB"), ops), 100, /OFPBIC_BAD_TABLE_ID \(type 3, code 2\)/);
  assert.ok(err.message.includes(`for flow add ${renderFlow(bad)}`), err.message);
  console.log(`    ${err.message}`);
  assert.equal(await dump(n, "brB"), before, "the delete and the good adds of the bundle were not applied");
  // and the connection is usable again right away
  await applyFlowsNative(n.ofSocket("brB"), BUNDLES[1]!);
  assert.equal(await dump(n, "brB"), before);
});

t("a dead or missing socket gives code 11 fast", async ({ n }) => {
  const stale = join(n.runDir, "stale.mgmt"); // a unix socket file nobody listens on
  await run(["python3", "-c", `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(stale)})`]);
  for (const target of [`unix:${stale}`, `unix:${n.runDir}/missing.mgmt`, "tcp:127.0.0.1:1"]) {
    const t0 = performance.now();
    await expectCode(applyFlowsNative(target, BUNDLES[0]!), 11, /ovs-vswitchd is not available, try again later: .*cannot connect/);
    assert.ok(performance.now() - t0 < 500, `${target} fails fast`);
  }
  // and after ovs-vswitchd stops, its socket refuses: code 11, not a hang
  await n.stopVswitchd();
  await expectCode(applyFlowsNative(n.ofSocket("brB"), BUNDLES[0]!), 11, /cannot connect/);
  await n.startVswitchd();
});

t("timing: 20 native bundles vs 20 ovs-ofctl bundles of the reconcile ops", async ({ n }) => {
  const ops = BUNDLES[0]!;
  const native: number[] = [];
  const ofctl: number[] = [];
  for (let i = 0; i < 20; i++) {
    let t0 = performance.now();
    await applyFlowsNative(n.ofSocket("brB"), ops);
    native.push(performance.now() - t0);
    t0 = performance.now();
    await ofctlBundle(n, "brA", ops);
    ofctl.push(performance.now() - t0);
  }
  console.log(`    ${ops.length} ops per bundle, median of 20: native ${median(native).toFixed(2)} ms, ovs-ofctl ${median(ofctl).toFixed(2)} ms`);
  assert.equal(await dump(n, "brB"), await dump(n, "brA"));
});

t.run();
