// ovsplane-agent restarts and outages on two simulated nodes: an agent restart loses no packet and deletes no flow, an API outage keeps traffic and turns /readyz off, a vswitchd restart is repaired in time, CNI latency on /metrics.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnApiServer, type ApiServerProcess } from "../harness/apiserver/process.ts";
import { createOutsideHost } from "../harness/outside.ts";
import { connectNodes, createNode, createPod, pidAlive, runPlugin, sleep, teardownAll, type SimNode, type SimPod } from "../harness/testbed.ts";
import { killPid } from "../harness/netns.ts";
import { BIN_DIR, CNI_PATH, OVSPLANE, rmTemp } from "./common.ts";

const t = suite("ovsplane-agent lifecycle");
const AGENT = join(BIN_DIR, "ovsplane-agent");
const NET = "podnet";
let A: SimNode, B: SimNode;
let api: ApiServerProcess;
let dir: string;
interface RunningAgent { node: SimNode; child: ChildProcess; log: string; confDir: string; stateDir: string }
const agents = new Map<string, RunningAgent>();
const pods: { pod: SimPod; ip: string; node: SimNode; config: Record<string, unknown>; containerID: string }[] = [];
const args = (name: string) => ({ IgnoreUnknown: "1", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: name });

const nodeObj = (name: string, ip: string, podCIDR: string) => ({
  metadata: { name },
  spec: { podCIDR, podCIDRs: [podCIDR] },
  status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }] },
});

/** Starts (or restarts) the node's agent inside its netns; stderr appended to one log file per node. */
function startAgent(node: SimNode): RunningAgent {
  const confDir = join(dir, `net.d-${node.name}`);
  const stateDir = join(dir, `state-${node.name}`);
  const tmpl = join(dir, `template-${node.name}.json`);
  writeFileSync(tmpl, JSON.stringify({
    cniVersion: "1.0.0",
    name: NET,
    plugins: [{
      type: "ovsplane", bridge: "br-int", datapathType: "netdev", ovsdbSocket: node.ovsdbSocket, segment: 1,
      ipam: { type: "ovsplane-ipam", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, `ipam-${node.name}`) },
      logFile: join(dir, `cni-${node.name}.log`),
    }],
  }));
  const log = join(dir, `agent-${node.name}.log`);
  const argv = [AGENT, "--kubeconfig", api.kubeconfig, "--node-name", node.name, "--conf-file", tmpl, "--cni-conf-dir", confDir, "--state-dir", stateDir, "--listen", "127.0.0.1:9109"];
  const child = spawn("ip", ["netns", "exec", node.netns, ...argv], { env: { ...process.env, ...node.env }, stdio: ["ignore", "ignore", "pipe"] });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => writeFileSync(log, d, { flag: "a" }));
  const a = { node, child, log, confDir, stateDir };
  agents.set(node.name, a);
  return a;
}

async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** GET on the node's agent endpoint, from inside its netns. */
async function http(node: SimNode, path: string): Promise<{ code: number; body: string }> {
  const r = await node.exec(["curl", "-s", "-m", "3", "-w", "\n%{http_code}", `http://127.0.0.1:9109${path}`], { allowFail: true });
  const i = r.stdout.lastIndexOf("\n");
  return { code: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

const conflistOf = (node: SimNode): any => {
  const p = join(agents.get(node.name)!.confDir, "10-ovsplane.conflist");
  return existsSync(p) ? JSON.parse(readFileSync(p, "utf8")) : undefined;
};
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

t.before(async () => {
  try {
    dir = mkdtempSync("/tmp/ovsp-agent-lc-");
    A = await createNode({ name: "a", underlayIP: "198.18.0.1" });
    B = await createNode({ name: "b", underlayIP: "198.18.0.2" });
    await connectNodes(A, B);
    const host = await createOutsideHost({ name: "apisrv", address: "198.18.0.200/24" });
    mkdirSync(join(dir, "api"));
    api = await spawnApiServer({ listen: "198.18.0.200:6443", dir: join(dir, "api"), netns: host.netns });
    for (const ns of ["default", "kube-system"]) await api.upsert("namespaces", { metadata: { name: ns } });
    await api.upsert("nodes", nodeObj("a", A.underlayIP, "10.244.1.0/24"));
    await api.upsert("nodes", nodeObj("b", B.underlayIP, "10.244.2.0/24"));
    for (const n of [A, B]) startAgent(n);
    for (const n of [A, B]) {
      await waitFor(`${n.name}'s /readyz`, async () => (await http(n, "/readyz")).code === 200, 20_000);
      await waitFor(`${n.name}'s conflist`, () => conflistOf(n));
    }
    for (const [node, name] of [[A, "pa"], [B, "pb"]] as const) {
      const c = conflistOf(node);
      const config = { cniVersion: c.cniVersion, name: c.name, ...c.plugins[0] };
      const pod = await createPod(name);
      const containerID = `ctr-${name}`;
      const r = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID, netns: pod, args: args(name), path: CNI_PATH, config });
      if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout} ${r.stderr}`);
      pods.push({ pod, node, config, containerID, ip: String(r.json.ips[0].address).split("/")[0]! });
    }
    if (!(await pods[0]!.pod.ping(pods[1]!.ip, { tries: 8 }))) throw new Error("pa on A cannot ping pb on B");
  } catch (e) {
    console.error("setup failed:", e); // uvu 0.5 hides hook errors
    throw e;
  }
});

t.after(async () => {
  for (const p of pods) await runPlugin({ bin: OVSPLANE, node: p.node, command: "DEL", containerID: p.containerID, netns: p.pod, args: args(p.pod.name), path: CNI_PATH, config: p.config }).catch(() => undefined);
  for (const a of agents.values()) if (a.child.pid && pidAlive(a.child.pid)) await killPid(a.child.pid);
  await api?.close();
  await teardownAll();
  if (process.env.AGENT_SHOW) for (const n of ["a", "b"]) console.log(readFileSync(join(dir, `agent-${n}.log`), "utf8"));
  rmTemp(dir);
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
  await api.stop();
  const t0 = Date.now();
  const r = await waitFor("A's /readyz not ready", async () => {
    const h = await http(A, "/readyz");
    return h.code === 503 && h;
  }, 10_000);
  console.log(`  API down: /readyz 503 after ${Date.now() - t0} ms (${r.body.trim()})`);
  assert.is((await http(A, "/healthz")).code, 200);
  const { sent, received } = await pingFor(pods[0]!.pod, pods[1]!.ip, 2);
  assert.is(received, sent, `traffic keeps flowing while the API is down: ${received}/${sent}`);
  await api.upsert("nodes", nodeObj("c", "198.18.0.3", "10.244.3.0/24"));
  await api.compact();
  await sleep(1000);
  assert.not.ok((await routes111(A)).includes("10.244.3.0/24"), "nothing seen while the API is down");
  assert.is((await http(A, "/readyz")).code, 503);
  await api.start();
  const t1 = Date.now();
  await waitFor("A's route to c's range", async () => (await routes111(A)).includes("10.244.3.0/24"), 15_000);
  const routeMs = Date.now() - t1;
  await waitFor("A's /readyz ready again", async () => (await http(A, "/readyz")).code === 200, 10_000);
  console.log(`  API back: missed Node applied after ${routeMs} ms, /readyz 200 after ${Date.now() - t1} ms`);
  await api.remove("nodes", "c");
  await waitFor("c's route gone", async () => !(await routes111(A)).includes("10.244.3.0/24"));
});

t("ovs-vswitchd restart on A: pods reach each other again within 2 s of it being up, without a CNI call", async () => {
  const calls = () => readFileSync(join(dir, "cni-a.log"), "utf8").split("\n").filter(Boolean).length;
  const n = calls();
  const flows = (await flowTable(A)).size;
  await A.stopVswitchd();
  await A.startVswitchd();
  const t0 = Date.now();
  const ping = waitFor("pa -> pb after the restart", () => pods[0]!.pod.ping(pods[1]!.ip, { tries: 1 }), 10_000).then(() => Date.now() - t0);
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
