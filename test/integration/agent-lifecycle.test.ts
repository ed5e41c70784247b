// ovsplane-agent restarts and outages on two simulated nodes: an agent restart loses no packet and deletes no flow, an API outage keeps traffic and turns /readyz off, a vswitchd restart is repaired in time, CNI latency on /metrics.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AgentBed, agentHttp as http, conflistOf, nodeObj, pluginConfig, waitFor, type AgentRun } from "../harness/agentbed.ts";
import { createPod, pidAlive, runPlugin, sleep, type SimNode, type SimPod } from "../harness/testbed.ts";
import { killPid } from "../harness/netns.ts";
import { CNI_PATH, OVSPLANE } from "./common.ts";
import { loudSetup } from "../harness/fixtures.ts";

const t = suite("ovsplane-agent lifecycle");
const bed = new AgentBed();
let A: SimNode, B: SimNode;
/** The running agent of each node (replaced on a restart). */
const agents = new Map<string, AgentRun>();
const pods: { pod: SimPod; ip: string; node: SimNode; config: Record<string, unknown>; containerID: string }[] = [];
const args = (name: string) => ({ IgnoreUnknown: "1", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: name });

/** Starts (or restarts) the node's agent. */
function startAgent(node: SimNode): AgentRun {
  const a = bed.startAgent(node, ["--gc-grace", "3600"]); // these pods have no Pod objects: keep the agent's GC off them
  agents.set(node.name, a);
  return a;
}

const routes111 = async (node: SimNode): Promise<string[]> =>
  JSON.parse((await node.exec(["ip", "-j", "route", "show", "proto", "111"])).stdout).map((r: { dst: string }) => r.dst);

/** The bridge's flows: identity (cookie, table, priority, match, actions) → packets. */
async function flowTable(node: SimNode): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await node.ofctl("dump-flows", "br-int")).split("\n")) {
    if (!line.includes("cookie=")) continue;
    const packets = Number(/n_packets=(\d+)/.exec(line)?.[1] ?? 0);
    out.set(line.replace(/ (duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*,/g, "").trim(), packets);
  }
  return out;
}

/** `ping -i 0.05` for about secs from a pod (a count, not a deadline that would cut the last reply off): packets sent and received. */
async function pingFor(pod: SimPod, ip: string, secs: number): Promise<{ sent: number; received: number }> {
  const r = await pod.exec(["ping", "-n", "-q", "-i", "0.05", "-W", "1", "-c", String(secs * 20), ip], { allowFail: true, timeoutMs: (secs + 15) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

/** A ping every 50 ms for up to secs, stopping at the first reply: its time in ms after t0 (Infinity: none). */
async function firstReplyMs(pod: SimPod, ip: string, t0: number, secs: number): Promise<number> {
  const r = await pod.exec(["ping", "-n", "-D", "-i", "0.05", "-W", "1", "-c", "1", "-w", String(secs), ip], { allowFail: true, timeoutMs: (secs + 5) * 1000 });
  const at = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(r.stdout)?.[1];
  return at ? Math.round(Number(at) * 1000 - t0) : Infinity;
}

t.before(loudSetup(async () => {
  await bed.setup([{ metadata: { name: "default" } }, { metadata: { name: "kube-system" } }]);
  ({ A, B } = bed);
  await bed.api!.upsert("nodes", nodeObj("a", A.underlayIP, "10.244.1.0/24"));
  await bed.api!.upsert("nodes", nodeObj("b", B.underlayIP, "10.244.2.0/24"));
  for (const n of [A, B]) startAgent(n);
  for (const n of [A, B]) {
    await waitFor(`${n.name}'s /readyz`, async () => (await http(n, "/readyz")).code === 200, 20_000);
    await waitFor(`${n.name}'s conflist`, () => conflistOf(agents.get(n.name)!));
  }
  for (const [node, name] of [[A, "pa"], [B, "pb"]] as const) {
    const config = pluginConfig(agents.get(node.name)!);
    const pod = await createPod(name);
    const containerID = `ctr-${name}`;
    const r = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID, netns: pod, args: args(name), path: CNI_PATH, config });
    if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout} ${r.stderr}`);
    pods.push({ pod, node, config, containerID, ip: String(r.json.ips[0].address).split("/")[0]! });
  }
  if (!(await pods[0]!.pod.ping(pods[1]!.ip, { tries: 8 }))) throw new Error("pa on A cannot ping pb on B");
}));

t.after(async () => {
  for (const p of pods) await runPlugin({ bin: OVSPLANE, node: p.node, command: "DEL", containerID: p.containerID, netns: p.pod, args: args(p.pod.name), path: CNI_PATH, config: p.config }).catch(() => undefined);
  await bed.teardown();
});

t("/metrics: the pod ADD with the agent's conflist is counted in ovsplane_cni_duration_seconds; the issue's metrics are there", async () => {
  const count = await waitFor("ADD counted on A", async () => {
    const m = await http(A, "/metrics");
    return Number(/^ovsplane_cni_duration_seconds_count\{command="ADD",result="ok"\} (\d+)$/m.exec(m.body)?.[1] ?? 0) || undefined;
  }, 5000);
  assert.is(count, 1);
  const body = (await http(A, "/metrics")).body;
  for (const name of ["ovsplane_agent_peers", "ovsplane_agent_local_pods", "ovsplane_agent_segments", "ovsplane_agent_reconcile_duration_seconds_bucket",
    "ovsplane_agent_watch_restarts_total", "ovsplane_agent_flow_replays_total", "ovsplane_cni_duration_seconds_bucket"]) {
    assert.match(body, new RegExp(`^# TYPE ${name.replace(/_bucket$/, "")} `, "m"), name);
  }
  assert.match(body, /^ovsplane_agent_local_pods 1$/m);
});

t("restarting A's agent under a continuous ping: no packet lost, no flow deleted or replaced", async () => {
  const before = await flowTable(A);
  const ping = pingFor(pods[0]!.pod, pods[1]!.ip, 6);
  await sleep(1000);
  const old = agents.get("a")!;
  await killPid(old.child.pid!);
  const t0 = Date.now();
  startAgent(A);
  await waitFor("A's new agent ready", async () => (await http(A, "/readyz")).code === 200, 20_000);
  const readyMs = Date.now() - t0;
  await sleep(1000); // let its first reconciles run while the ping goes on
  const { sent, received } = await ping;
  console.log(`  agent restart: ready again in ${readyMs} ms; ping ${received}/${sent} (${sent - received} lost)`);
  assert.ok(sent >= 100, `ping ran: ${sent} sent`);
  assert.is(sent - received, 0, "no packet lost across the agent restart");
  const after = await flowTable(A);
  for (const [flow, packets] of before) {
    assert.ok(after.has(flow), `flow kept: ${flow}`);
    assert.ok(after.get(flow)! >= packets, `counters not reset (not replaced): ${flow}`);
  }
  assert.is(after.size, before.size, "no flow added either");
});

t("API server down: traffic flows, /readyz 503, /healthz 200; back: a Node added meanwhile (history compacted, 410) is applied", async () => {
  await bed.api!.stop();
  const t0 = Date.now();
  const r = await waitFor("A's /readyz not ready", async () => {
    const h = await http(A, "/readyz");
    return h.code === 503 && h;
  }, 10_000);
  console.log(`  API down: /readyz 503 after ${Date.now() - t0} ms (${r.body.trim()})`);
  assert.is((await http(A, "/healthz")).code, 200);
  const { sent, received } = await pingFor(pods[0]!.pod, pods[1]!.ip, 2);
  assert.is(received, sent, `traffic keeps flowing while the API is down: ${received}/${sent}`);
  await bed.api!.upsert("nodes", nodeObj("c", "198.18.0.3", "10.244.3.0/24"));
  await bed.api!.compact();
  await sleep(1000);
  assert.not.ok((await routes111(A)).includes("10.244.3.0/24"), "nothing seen while the API is down");
  assert.is((await http(A, "/readyz")).code, 503);
  await bed.api!.start();
  const t1 = Date.now();
  await waitFor("A's route to c's range", async () => (await routes111(A)).includes("10.244.3.0/24"), 15_000);
  const routeMs = Date.now() - t1;
  await waitFor("A's /readyz ready again", async () => (await http(A, "/readyz")).code === 200, 10_000);
  console.log(`  API back: missed Node applied after ${routeMs} ms, /readyz 200 after ${Date.now() - t1} ms`);
  await bed.api!.remove("nodes", "c");
  await waitFor("c's route gone", async () => !(await routes111(A)).includes("10.244.3.0/24"));
});

t("ovs-vswitchd restart on A: pods reach each other again within 2 s of it being up, without a CNI call", async () => {
  const calls = () => readFileSync(join(bed.dir, "cni-a.log"), "utf8").split("\n").filter(Boolean).length;
  const n = calls();
  const flows = (await flowTable(A)).size;
  await A.stopVswitchd();
  await A.startVswitchd();
  const t0 = Date.now();
  const ping = firstReplyMs(pods[0]!.pod, pods[1]!.ip, t0, 5);
  await waitFor("every flow back", async () => (await flowTable(A)).size >= flows, 10_000);
  const flowMs = Date.now() - t0;
  const ms = await ping;
  console.log(`  ovs-vswitchd restart: all ${flows} flows back ${flowMs} ms, pods talk again ${ms} ms after it was up`);
  assert.ok(ms < 2000, `within 2 s: ${ms} ms`);
  assert.is(calls(), n, "no CNI call");
});

t("flow-restore-wait: with the agent killed, a restarted ovs-vswitchd waits; an ADD meanwhile works; the agent's return releases it", async () => {
  const wait = () => A.vsctl("--if-exists", "get", "Open_vSwitch", ".", "other_config:flow-restore-wait").then((v) => v.replace(/"/g, "").trim());
  assert.is(await wait(), "true", "kept true while the agent runs");
  const old = agents.get("a")!;
  process.kill(old.child.pid!, "SIGKILL");
  await waitFor("A's agent gone", () => !pidAlive(old.child.pid!));
  await A.stopVswitchd();
  await A.startVswitchd();
  const pod = await createPod("pc");
  const tAdd = Date.now();
  const r = await runPlugin({ bin: OVSPLANE, node: A, command: "ADD", containerID: "ctr-pc", netns: pod, args: args("pc"), path: CNI_PATH, config: pods[0]!.config });
  assert.is(r.code, 0, `ADD while ovs-vswitchd waits: ${r.stdout} ${r.stderr}`);
  const addMs = Date.now() - tAdd;
  const pc = { pod, node: A, config: pods[0]!.config, containerID: "ctr-pc", ip: String(r.json.ips[0].address).split("/")[0]! };
  pods.push(pc);
  assert.not.ok(await pc.pod.ping(pods[1]!.ip, { tries: 1 }), "nothing forwarded before the agent's replay");
  const t0 = Date.now();
  startAgent(A);
  await waitFor("pc -> pb once the agent is back", () => pc.pod.ping(pods[1]!.ip, { tries: 1 }), 15_000);
  console.log(`  flow-restore-wait: ADD in ${addMs} ms while waiting; pods talk ${Date.now() - t0} ms after the agent was started`);
  assert.ok(await pods[0]!.pod.ping(pods[1]!.ip, { tries: 3 }), "pa -> pb too");
  assert.is(await wait(), "true", "armed again for the next restart");
});

t.run();
