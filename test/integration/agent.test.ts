// ovsplane-agent on two simulated nodes against the fake API server: conflist, segments.json, peer flows and routes, health, flow replay.
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { ApiServerProcess } from "../harness/apiserver/process.ts";
import { AgentBed, agentHttp, conflistOf, NET, nodeObj, segmentsOf, waitFor, type AgentRun } from "../harness/agentbed.ts";
import { createPod, runPlugin, sleep, type SimNode } from "../harness/testbed.ts";
import { readFlows } from "../../lib/node/flows.ts";
import { EXACT_MASK, NODE_COOKIE, peerCookie, routeCookie } from "../../lib/dataplane/pipeline.ts";
import { networkId } from "../../lib/dataplane/names.ts";
import { parseIp } from "../../lib/net/ip.ts";
import { loudSetup, scoped } from "../harness/fixtures.ts";
import { CNI_PATH, OVSPLANE } from "./common.ts";

const t = suite("ovsplane-agent");
const bed = new AgentBed();
let A: SimNode, B: SimNode;
let api: ApiServerProcess;
const agents: AgentRun[] = bed.agents;
const http = agentHttp;

const ipNum = (ip: string) => parseIp(ip).value;
const peerFlows = (node: SimNode, peerIP: string) => readFlows(node.ofSocket("br-int"), [
  { cookie: peerCookie(ipNum(peerIP)), mask: EXACT_MASK },
  { cookie: routeCookie(networkId(NET), ipNum(peerIP)), mask: EXACT_MASK },
]);
const routes111 = async (node: SimNode): Promise<string[]> =>
  JSON.parse((await node.exec(["ip", "-j", "route", "show", "proto", "111"])).stdout).map((r: { dst: string }) => r.dst);

t.before(loudSetup(async () => {
  await setup();
}));

async function setup(): Promise<void> {
  await bed.setup(["default", "kube-system", "x"].map((name) => ({ metadata: { name } })));
  ({ A, B } = bed);
  api = bed.api!;
  await api.upsert("nodes", nodeObj("a", A.underlayIP)); // no pod range yet
  bed.startAgent(A);
  bed.startAgent(B);
}

t.after(() => bed.teardown());

t("ready once the API is listed and OVSDB answers; no conflist while the Node has no pod range", async () => {
  await waitFor("A's /readyz", async () => (await http(A, "/readyz")).code === 200, 20_000);
  assert.is((await http(A, "/healthz")).code, 200);
  await sleep(300);
  assert.is(conflistOf(agents[0]!), undefined, "no conflist without a pod range");
  assert.match(readFileSync(agents[0]!.log, "utf8"), /waiting: Node a has no IPv4 pod range/);
  assert.is(conflistOf(agents[1]!), undefined, "no conflist without a Node");
});

t("the conflist appears once the Node has a pod range: facts filled, agent stateDir, no peers", async () => {
  await api.upsert("nodes", nodeObj("a", A.underlayIP, "10.244.1.0/24"));
  const c = await waitFor("A's conflist", () => conflistOf(agents[0]!));
  const p = c.plugins[0];
  assert.equal(p.tunnel, { localIP: "198.18.0.1" });
  assert.equal(p.ipam.ranges, [[{ subnet: "10.244.1.0/24" }]]);
  assert.equal(p.agent, { stateDir: agents[0]!.stateDir });
  assert.is(p.peers, undefined);
  assert.is(c["ovsplane.dev/managed-by"], "ovsplane-agent");
  await waitFor("A's gateway address", async () => (await A.exec(["ip", "-j", "addr", "show", "dev", "ovsplane-gw"], { allowFail: true })).stdout.includes("10.244.1.1"));
});

t("segments.json follows Namespace labels (kube-system on the first global segment)", async () => {
  const first = await waitFor("segments.json", () => segmentsOf(agents[0]!));
  assert.equal(first.namespaces, { default: 1, "kube-system": 5, x: 1 });
  await api.upsert("namespaces", { metadata: { name: "x", labels: { "ovsplane.dev/segment": "100" } } });
  const next = await waitFor("x in segment 100", () => segmentsOf(agents[0]!)?.namespaces?.x === 100 && segmentsOf(agents[0]!));
  assert.ok(next.generation > first.generation);
  await waitFor("B's segments.json too", () => segmentsOf(agents[1]!)?.namespaces?.x === 100);
});

t("a peer Node brings its acceptance and route flows and a proto 111 route; removing it takes them away", async () => {
  const t0 = Date.now();
  await api.upsert("nodes", nodeObj("b", B.underlayIP, "10.244.2.0/24"));
  await waitFor("B's flows on A", async () => (await peerFlows(A, B.underlayIP)).length >= 2);
  await waitFor("A's route to B's range", async () => (await routes111(A)).includes("10.244.2.0/24"));
  const took = Date.now() - t0;
  await waitFor("B's conflist", () => conflistOf(agents[1]!));
  await waitFor("A's flows on B", async () => (await peerFlows(B, A.underlayIP)).length >= 2);
  await waitFor("B's route to A's range", async () => (await routes111(B)).includes("10.244.1.0/24"));
  console.log(`  peer Node added -> flows and route on A in ${took} ms`);
  await api.remove("nodes", "b");
  await waitFor("B's flows gone from A", async () => (await peerFlows(A, B.underlayIP)).length === 0);
  await waitFor("A's route to B's range gone", async () => !(await routes111(A)).includes("10.244.2.0/24"));
  await api.upsert("nodes", nodeObj("b", B.underlayIP, "10.244.2.0/24"));
  await waitFor("B's flows back on A", async () => (await peerFlows(A, B.underlayIP)).length >= 2);
});

t("/metrics answers with the agent's metrics", async () => {
  const m = await http(A, "/metrics");
  assert.is(m.code, 200);
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(m.body)?.[1]);
  assert.is(value("ovsplane_agent_peers"), 1);
  assert.is(value("ovsplane_agent_segments"), 3);
  assert.ok(value("ovsplane_agent_reconcile_duration_seconds_count") >= 3);
  const mean = value("ovsplane_agent_reconcile_duration_seconds_sum") / value("ovsplane_agent_reconcile_duration_seconds_count");
  console.log(`  A: ${value("ovsplane_agent_reconcile_duration_seconds_count")} reconciles, mean ${(mean * 1000).toFixed(1)} ms`);
  const ready = await http(A, "/readyz");
  assert.is(ready.code, 200);
});

t("after del-flows on A's bridge the node-wide flows are back within 2 s (and a static ADD's fingerprint of them is dropped)", async () => {
  // A fingerprint left by a static-mode ADD must not outlive the agent's own writing of the node-wide flows.
  await A.vsctl("br-set-external-id", "br-int", "ovsplane-flows-podnet", "stale");
  await A.ofctl("del-flows", "br-int");
  const t0 = Date.now();
  assert.is((await readFlows(A.ofSocket("br-int"), [{ cookie: NODE_COOKIE, mask: EXACT_MASK }])).length, 0);
  await waitFor("node flows back", async () =>
    (await readFlows(A.ofSocket("br-int"), [{ cookie: NODE_COOKIE, mask: EXACT_MASK }])).length > 0 && (await peerFlows(A, B.underlayIP)).length >= 2, 2000);
  console.log(`  flows back ${Date.now() - t0} ms after del-flows`);
  await waitFor("the static fingerprint gone", async () => !(await A.vsctl("br-get-external-id", "br-int")).includes("ovsplane-flows-podnet"), 2000);
});

t("after an API server outage the informers are restarted and the agent converges", async () => {
  await api.stop();
  await sleep(700);
  await api.start();
  await api.upsert("namespaces", { metadata: { name: "y", labels: { "ovsplane.dev/segment": "200" } } });
  await waitFor("y in segment 200 after the outage", () => segmentsOf(agents[0]!)?.namespaces?.y === 200, 15_000);
  const m = await http(A, "/metrics");
  const restarts = [...m.body.matchAll(/^ovsplane_agent_watch_restarts_total\{resource="\w+"\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
  assert.ok(restarts > 0, `watch restarts counted: ${restarts}`);
  assert.is((await http(A, "/readyz")).code, 200);
});

t("pods ADDed with the agent's conflists reach each other across nodes by their namespace's segment, with no static peers", scoped(async (s) => {
  const pods: { pod: Awaited<ReturnType<typeof createPod>>; ip: string }[] = [];
  for (const [node, agent, name] of [[A, agents[0]!, "pa"], [B, agents[1]!, "pb"]] as const) {
    const c = conflistOf(agent);
    const config = { cniVersion: c.cniVersion, name: c.name, ...c.plugins[0] };
    await api.upsert("pods", { metadata: { name, namespace: "x" }, spec: { nodeName: node.name } }); // listed: the agent's GC keeps it
    const pod = await createPod(name);
    s.defer(() => pod.destroy());
    const containerID = `ctr-${name}`;
    const args = { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "x", K8S_POD_NAME: name };
    const r = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID, netns: pod, args, path: CNI_PATH, config });
    assert.is(r.code, 0, `ADD ${name}: ${r.stdout} ${r.stderr}`);
    s.defer(() => runPlugin({ bin: OVSPLANE, node, command: "DEL", containerID, netns: pod, args, path: CNI_PATH, config }));
    const port = await node.vsctl("get", "port", r.json.interfaces[0].name, "external_ids:ovsplane-segment");
    assert.is(port.replace(/"/g, ""), "100", "namespace x is in segment 100");
    pods.push({ pod, ip: String(r.json.ips[0].address).split("/")[0]! });
  }
  assert.ok(await pods[0]!.pod.ping(pods[1]!.ip, { tries: 8 }), "pa on A -> pb on B");
  assert.ok(await pods[1]!.pod.ping(pods[0]!.ip, { tries: 8 }), "pb on B -> pa on A");
  // The pods' flows are the agent's to replay too: flush A's bridge and the pod on A is reachable again.
  await A.ofctl("del-flows", "br-int");
  await waitFor("A's pod reachable again after del-flows", () => pods[1]!.pod.ping(pods[0]!.ip, { tries: 1 }), 5000);
  // An ovs-vswitchd restart loses every flow and the gateway's address: all back without a CNI call.
  await A.stopVswitchd();
  await A.startVswitchd();
  const t0 = Date.now();
  await waitFor("A's pod reachable after an ovs-vswitchd restart", () => pods[1]!.pod.ping(pods[0]!.ip, { tries: 1 }), 10_000);
  await waitFor("A's gateway address back", async () => (await A.exec(["ip", "-j", "addr", "show", "dev", "ovsplane-gw"], { allowFail: true })).stdout.includes("10.244.1.1"));
  assert.ok((await routes111(A)).includes("10.244.2.0/24"), "the route to B's range is back");
  console.log(`  pod on A reachable ${Date.now() - t0} ms after ovs-vswitchd was back`);
}));

t.run();
