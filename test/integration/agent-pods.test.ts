// ovsplane-agent and running pods on two simulated nodes: GC of attachments whose Pod is gone, ADDs in flight kept, Namespace relabel moving pods.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AgentBed, agentHttp, conflistOf, NET, nodeObj, pluginConfig, podObj, segmentsOf, waitFor, type AgentRun } from "../harness/agentbed.ts";
import { loudSetup, scoped, type Scope } from "../harness/fixtures.ts";
import { createPod, runPlugin, sleep, type SimNode, type SimPod } from "../harness/testbed.ts";
import { readFlows } from "../../lib/node/flows.ts";
import { attachmentId } from "../../lib/dataplane/names.ts";
import { EXACT_MASK, podCookie, segmentCookie } from "../../lib/dataplane/pipeline.ts";
import { CNI_PATH, OVSPLANE } from "./common.ts";

const t = suite("ovsplane-agent: pods");
const bed = new AgentBed();
const SEG = "ovsplane.dev/segment";
const GRACE_S = 1;

t.before(loudSetup(async () => {
  await bed.setup([
    { metadata: { name: "default" } },
    { metadata: { name: "kube-system" } },
    { metadata: { name: "x", labels: { [SEG]: "100" } } },
    { metadata: { name: "m", labels: { [SEG]: "300" } } },
    { metadata: { name: "old", labels: { [SEG]: "300" } } },
  ]);
  await bed.api!.upsert("nodes", nodeObj("a", bed.A.underlayIP, "10.244.1.0/24"));
  await bed.api!.upsert("nodes", nodeObj("b", bed.B.underlayIP, "10.244.2.0/24"));
  for (const n of [bed.A, bed.B]) bed.startAgent(n, ["--gc-grace", String(GRACE_S)]);
  for (const a of bed.agents) {
    await waitFor(`${a.node.name}'s /readyz`, async () => (await agentHttp(a.node, "/readyz")).code === 200, 20_000);
    await waitFor(`${a.node.name}'s conflist and segments`, () => conflistOf(a) && segmentsOf(a)?.namespaces?.m === 300);
  }
}));

t.after(async () => {
  await bed.teardown();
});

/** A pod ADDed by ovsplane with an agent's conflist. */
interface Added {
  node: SimNode;
  agent: AgentRun;
  pod: SimPod;
  name: string;
  containerID: string;
  ip: string;
  hostVeth: string;
  config: Record<string, unknown>;
  result: any;
}

/** ADDs a pod (Kubernetes CNI_ARGS when namespace is given; its Pod object first when podObject); DEL and Pod removal deferred. */
async function addPod(s: Scope, agent: AgentRun, name: string, namespace: string | undefined, podObject: boolean, extra: Record<string, string> = {}): Promise<Added> {
  const node = agent.node;
  if (podObject) {
    await bed.api!.upsert("pods", podObj(namespace!, name, node.name));
    s.defer(() => bed.api!.remove("pods", name, namespace).catch(() => undefined));
  }
  const pod = await createPod(name);
  s.defer(() => pod.destroy());
  const containerID = `ctr-${name}`;
  const args: Record<string, string> = { ...(namespace ? { IgnoreUnknown: "1", K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name } : { IgnoreUnknown: "1" }), ...extra };
  const config = pluginConfig(agent);
  const r = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID, netns: pod, args, path: CNI_PATH, config });
  assert.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
  s.defer(() => runPlugin({ bin: OVSPLANE, node, command: "DEL", containerID, netns: pod, args, path: CNI_PATH, config }));
  return { node, agent, pod, name, containerID, ip: String(r.json.ips[0].address).split("/")[0]!, hostVeth: r.json.interfaces[0].name, config, result: r.json };
}

const ports = async (node: SimNode) => (await node.vsctl("list-ports", "br-int")).split("\n").filter(Boolean);
const vethExists = async (p: Added) => (await p.node.exec(["ip", "link", "show", p.hostVeth], { allowFail: true })).code === 0;
const leaseExists = (p: Added) => existsSync(join(p.agent.ipamDir, NET, p.ip));
const podFlowCount = async (p: Added) =>
  (await readFlows(p.node.ofSocket("br-int"), [{ cookie: podCookie(attachmentId(NET, p.containerID, "eth0")), mask: EXACT_MASK }])).length;
const segmentTag = async (p: Added) => (await p.node.vsctl("get", "port", p.hostVeth, "external_ids:ovsplane-segment")).replace(/"/g, "");
/** Everything of the attachment is there: port, veth, lease, pod flows. */
const present = async (p: Added) => (await ports(p.node)).includes(p.hostVeth) && (await vethExists(p)) && leaseExists(p) && (await podFlowCount(p)) > 0;
const gcRemovals = async (node: SimNode) => Number(/^ovsplane_gc_removals_total (\S+)$/m.exec((await agentHttp(node, "/metrics")).body)?.[1]);

t("GC removes an attachment whose Pod is deleted (port, veth, flows, lease) after the grace period; keeps listed pods and ports without pod tags", scoped(async (s) => {
  const agent = bed.agents[0]!;
  const kept = await addPod(s, agent, "g-kept", "x", true);
  const gone = await addPod(s, agent, "g-gone", "x", true);
  const bare = await addPod(s, agent, "g-bare", undefined, false);
  assert.ok(await present(gone), "the attachment is complete before");
  const before = await gcRemovals(agent.node);
  await bed.api!.remove("pods", "g-gone", "x");
  const t0 = Date.now();
  await sleep(GRACE_S * 1000 * 0.5);
  assert.ok(await present(gone), "still there within the grace period");
  await waitFor("g-gone's port, veth, flows and lease gone", async () =>
    !(await ports(agent.node)).includes(gone.hostVeth) && !(await vethExists(gone)) && !leaseExists(gone) && (await podFlowCount(gone)) === 0, 10_000);
  const took = Date.now() - t0;
  assert.ok(took >= GRACE_S * 1000, `not before the grace period (${took} ms)`);
  console.log(`  attachment of a deleted Pod removed ${took} ms after the deletion (grace ${GRACE_S} s)`);
  assert.is(await gcRemovals(agent.node), before + 1, "ovsplane_gc_removals_total counted it");
  await sleep(GRACE_S * 1000 * 2);
  assert.ok(await present(kept), "the listed pod's attachment stays");
  assert.ok(await present(bare), "the attachment without pod tags stays");
}));

t("an ADD in flight is not collected: its Pod listed, or delivered late within the grace period", scoped(async (s) => {
  const agent = bed.agents[1]!;
  const listed = await addPod(s, agent, "f-listed", "x", true);
  // The runtime's ADD before the informer delivers the Pod: the grace period covers it.
  const late = await addPod(s, agent, "f-late", "x", false);
  await sleep(GRACE_S * 1000 * 0.4);
  await bed.api!.upsert("pods", podObj("x", "f-late", "b"));
  s.defer(() => bed.api!.remove("pods", "f-late", "x").catch(() => undefined));
  await sleep(GRACE_S * 1000 * 3); // several GC periods
  assert.ok(await present(listed), "the listed pod's attachment survives");
  assert.ok(await present(late), "the late-listed pod's attachment survives");
  assert.is(await gcRemovals(agent.node), 0);
}));

t("relabeling a Namespace moves its running pods on both nodes within 2 s: tags, flows, reachability, CHECK", scoped(async (s) => {
  const [aA, aB] = bed.agents as [AgentRun, AgentRun];
  const r1 = await addPod(s, aA, "r1", "m", true);
  const r2 = await addPod(s, aB, "r2", "m", true);
  const o = await addPod(s, aA, "o1", "old", true);
  const ob = await addPod(s, aB, "o2", "old", true);
  const pinned = await addPod(s, aA, "p1", "m", true, { OVSPLANE_SEGMENT: "300" });
  for (const p of [r1, r2, o, ob, pinned]) assert.is(await segmentTag(p), "300");
  assert.ok(await r1.pod.ping(r2.ip, { tries: 8 }), "r1 -> r2 before");
  assert.ok(await o.pod.ping(r2.ip, { tries: 8 }), "o1 -> r2 before (same segment)");
  await bed.api!.upsert("namespaces", { metadata: { name: "m", labels: { [SEG]: "301" } } });
  const t0 = Date.now();
  await waitFor("both ports in segment 301", async () => (await segmentTag(r1)) === "301" && (await segmentTag(r2)) === "301", 2000);
  console.log(`  relabel -> both ports carry the new segment in ${Date.now() - t0} ms`);
  assert.is(await segmentTag(o), "300", "a pod of the other namespace stays");
  assert.is(await segmentTag(pinned), "300", "a pod whose segment was asked for (OVSPLANE_SEGMENT) stays");
  assert.ok(await r1.pod.ping(r2.ip, { tries: 8 }), "r1 -> r2 after (same new segment)");
  assert.ok(await r2.pod.ping(r1.ip, { tries: 8 }), "r2 -> r1 after");
  assert.not.ok(await o.pod.ping(r1.ip, { tries: 2 }), "o1 no longer reaches r1 (same node)");
  assert.not.ok(await o.pod.ping(r2.ip, { tries: 2 }), "o1 no longer reaches r2 (across nodes)");
  assert.ok(await o.pod.ping(ob.ip, { tries: 8 }), "the old segment still works for its own pods");
  for (const p of [r1, r2]) {
    const chk = await runPlugin({ bin: OVSPLANE, node: p.node, command: "CHECK", containerID: p.containerID, netns: p.pod, args: { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "m", K8S_POD_NAME: p.name }, path: CNI_PATH, config: { ...p.config, prevResult: p.result } });
    assert.is(chk.code, 0, `CHECK ${p.name} after the move: ${chk.stdout} ${chk.stderr}`);
  }
  const seg300 = (n: SimNode) => readFlows(n.ofSocket("br-int"), [{ cookie: segmentCookie(300), mask: EXACT_MASK }]);
  assert.ok((await seg300(bed.A)).length > 0, "segment 300's flow stays on A while o1 uses it");
  // Back to 300 with the old pods gone from B: the moved pod returns, and 301's flow leaves both nodes.
  await bed.api!.upsert("namespaces", { metadata: { name: "m", labels: { [SEG]: "300" } } });
  await waitFor("both ports back in 300", async () => (await segmentTag(r1)) === "300" && (await segmentTag(r2)) === "300", 2000);
  for (const n of [bed.A, bed.B]) {
    await waitFor(`segment 301's flow gone on ${n.name}`, async () => (await readFlows(n.ofSocket("br-int"), [{ cookie: segmentCookie(301), mask: EXACT_MASK }])).length === 0, 2000);
  }
  assert.ok(await o.pod.ping(r1.ip, { tries: 8 }), "o1 reaches r1 again");
}));

t.run();
