// The demo's second half: ovsplane-agent on each node (fake API server): conflist from the Node, segments from Namespace labels, NetworkPolicy and ClusterIP Services in OVS.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { AgentBed, conflistOf, segmentsOf, waitFor, type AgentRun } from "../test/harness/agentbed.ts";
import type { SimNode, SimPod } from "../test/harness/testbed.ts";
import { serveTcp, tcpRequest, type TcpServer } from "../test/harness/outside.ts";
import { BIN_DIR } from "../test/integration/common.ts";
import { Table } from "../lib/dataplane/pipeline.ts";
import { Tag } from "../lib/dataplane/attachment.ts";

const say = (s = "") => process.stdout.write(`${s}\n`);
const PORT = 8080;
const VIP = "10.96.0.10";
const SEGMENT_LABEL = "ovsplane.dev/segment";

/** A demo pod: Namespace, name, labels, node ("a" or "b"); its address and netns once added. */
interface P { ns: string; name: string; labels: Record<string, string>; node: "a" | "b"; ip?: string; pod?: SimPod }
const PODS: P[] = [
  { ns: "shop", name: "web", labels: { role: "frontend" }, node: "a" },
  { ns: "shop", name: "batch", labels: { role: "batch" }, node: "a" },
  { ns: "shop", name: "api-a", labels: { app: "api" }, node: "a" },
  { ns: "shop", name: "api-b", labels: { app: "api" }, node: "b" },
  { ns: "lab", name: "probe", labels: {}, node: "a" },
];
const pod = (name: string): P => PODS.find((p) => p.name === name)!;

/** Runs the agent half of the demo; tears down what it made, also on Ctrl-C. */
export async function agentDemo(): Promise<void> {
  const bed = new AgentBed();
  const servers: TcpServer[] = [];
  const onSignal = () => {
    for (const a of bed.agents) a.child.kill("SIGKILL");
    if (bed.api) process.kill(bed.api.pid, "SIGKILL");
    rmSync(bed.dir, { recursive: true, force: true }); // the harness's own handler tears the nodes down and exits
  };
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    await run(bed, servers);
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
    for (const s of servers.splice(0)) await s.stop().catch(() => undefined);
    for (const p of PODS) await p.pod?.destroy().catch(() => undefined);
    await bed.teardown();
  }
}

async function run(bed: AgentBed, servers: TcpServer[]): Promise<void> {
  say("\n=== Part 2: the node agent (ovsplane-agent), as in a real cluster ===");
  say("Two fresh nodes (a, b), a fake Kubernetes API server, and ovsplane-agent on each node watching it.");
  say(`Namespaces: shop labelled ${SEGMENT_LABEL}=100, lab labelled ${SEGMENT_LABEL}=200.\n`);
  await bed.setup([
    { metadata: { name: "default" } },
    { metadata: { name: "shop", labels: { [SEGMENT_LABEL]: "100" } } },
    { metadata: { name: "lab", labels: { [SEGMENT_LABEL]: "200" } } },
  ]);
  await bed.startAgents(["--gc-grace", "3600"]);
  const agentA = bed.agents.find((a) => a.node === bed.A)!;
  const conf = conflistOf(agentA).plugins[0];
  say("The conflist template names no node address, pod range or peer; node a's agent read the Node objects");
  say(`and wrote ${join("<cni-conf-dir>", "10-ovsplane.conflist")} with: ${describeConf(conf)}`);
  say(`and segments.json (Namespace -> segment, from the labels): ${JSON.stringify(segmentsOf(agentA).namespaces)}`);
  const tunnel = (await bed.A.dumpFlows("br-int")).find((l) => l.includes("tun_dst"));
  say(`Its peer, node b, came from Node b too: node a's agent wrote the tunnel flow\n  ${tunnel?.trim() ?? "(none)"}\n`);

  const nodeOf = (p: P): SimNode => (p.node === "a" ? bed.A : bed.B);
  for (const p of PODS) {
    await upsertPod(bed, p);
    ({ pod: p.pod, ip: p.ip } = await bed.addPod(nodeOf(p), p.ns, p.name));
    await upsertPod(bed, p);
    const lbl = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-";
    say(`CNI ADD ${`${p.ns}/${p.name}`.padEnd(11)} on node ${p.node} (labels ${lbl.padEnd(13)}): eth0 ${p.ip}, segment ${await segmentOf(nodeOf(p), p)}`);
  }
  await pod("web").pod!.ping(pod("api-b").ip!, { tries: 3 }); // warms the tunnel neighbour (the userspace datapath drops the first packet)
  servers.push(await serveTcp(pod("api-b").pod!, PORT, { connections: 1000, timeoutMs: 60_000 })); // answers "peer <client address>"

  say("\nAcross nodes, by segment (TCP 8080 to shop/api-b on node b):");
  await show(pod("web"), "api-b", "segment 100 to 100, node a to node b through the VXLAN tunnel");
  await show(pod("probe"), "api-b", "segment 200 to 100: the Namespace label keeps lab apart");

  say("\nNetworkPolicy shop/api-from-frontend: pods app=api accept only pods role=frontend (enforced in OVS by the agent):");
  await show(pod("batch"), "api-b", "no policy yet");
  await bed.api!.upsert("networkpolicies", {
    apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: "api-from-frontend", namespace: "shop" },
    spec: { podSelector: { matchLabels: { app: "api" } }, policyTypes: ["Ingress"], ingress: [{ from: [{ podSelector: { matchLabels: { role: "frontend" } } }] }] },
  });
  await settle(pod("batch"), "api-b", false);
  await show(pod("batch"), "api-b", "policy in place");
  await show(pod("web"), "api-b", "policy in place");
  pod("batch").labels = { role: "frontend" };
  await upsertPod(bed, pod("batch"));
  await settle(pod("batch"), "api-b", true);
  await show(pod("batch"), "api-b", "after relabelling batch role=frontend");
  pod("batch").labels = { role: "batch" };
  await upsertPod(bed, pod("batch"));
  await settle(pod("batch"), "api-b", false);
  await show(pod("batch"), "api-b", "after relabelling it back");
  await explain(agentA);

  say(`\nClusterIP Service shop/api ${VIP}:80 -> app=api pods on 8080 (endpoints api-a on node a, api-b on node b).`);
  say("No kube-proxy rules on these nodes this time: the agent load-balances the ClusterIP in OVS (conntrack DNAT).");
  await upsertService(bed);
  await waitFor("the Service's DNAT flows on node a", async () => (await dnatFlows(bed.A)).flows === 2, 10_000);
  for (const s of servers.splice(0)) await s.stop();
  const eps = ["api-a", "api-b"] as const;
  for (const n of eps) servers.push(await serveTcp(pod(n).pod!, PORT, { connections: 1000, timeoutMs: 60_000 }));
  const before = (await dnatFlows(bed.A)).packets;
  const got = [];
  for (let i = 0; i < 8; i++) got.push(await tcpRequest(pod("web").pod!, VIP, 80, { timeoutMs: 3000, data: "from shop/web\n" }));
  const after = (await dnatFlows(bed.A)).packets;
  const batchVia = await tcpRequest(pod("batch").pod!, VIP, 80, { timeoutMs: 1500, data: "from shop/batch\n" });
  const served = await Promise.all(servers.splice(0).map((s) => s.stop()));
  say(`  shop/web -> ${VIP}:80, 8 connections: ${got.filter((r) => r.ok).length} answered; which endpoint served them:`);
  eps.forEach((n, i) => {
    const seen = [...new Set(served[i]!.filter((c) => c.data.includes("shop/web")).map((c) => c.peer))];
    const count = served[i]!.filter((c) => c.data.includes("shop/web")).length;
    say(`    ${count} x ${n} (node ${pod(n).node})${seen.length ? `, which saw the client as ${seen.join(", ")}${seen.join() === pod("web").ip ? " = shop/web's own address" : ""}` : ""}`);
  });
  say(`  node a's Service DNAT flows in OVS matched ${after - before} more packets meanwhile`);
  say(`  shop/batch -> ${VIP}:80: ${batchVia.ok ? `answered (${batchVia.reply.trim()})` : "blocked"}: the policy holds for the endpoint the Service chose`);
  say("\nAgent part done; tearing down the agents, the API server and the nodes.");
}

/** The node address, pod range and static peers of the agent's conflist, in a line. */
function describeConf(c: any): string {
  const range = c.ipam?.ranges?.[0]?.[0]?.subnet ?? c.ipam?.subnet ?? c.podCIDR ?? "?";
  return `tunnel.localIP ${c.tunnel?.localIP ?? "?"}, IPAM range ${range}, static peers: ${c.peers?.length ? JSON.stringify(c.peers) : "none"}`;
}

/** The Pod in the fake API (labels; its address once known). */
async function upsertPod(bed: AgentBed, p: P): Promise<void> {
  await bed.api!.upsert("pods", {
    metadata: { name: p.name, namespace: p.ns, labels: p.labels },
    spec: { nodeName: p.node, containers: [{ name: "c", image: "scratch" }] },
    ...(p.ip ? { status: { podIP: p.ip, podIPs: [{ ip: p.ip }] } } : {}),
  });
}

/** The pod's segment as OVS has it: the tag on its port (external_ids), looked up by Pod namespace and name. */
async function segmentOf(node: SimNode, p: P): Promise<string> {
  for (const table of ["Port", "Interface"]) {
    const r = await node.vsctl("--bare", "--columns=external_ids", "find", table, `external_ids:${Tag.PodNamespace}=${p.ns}`, `external_ids:${Tag.PodName}=${p.name}`).catch(() => "");
    const seg = new RegExp(`${Tag.Segment}="?(\\d+)`).exec(r)?.[1];
    if (seg) return seg;
  }
  return "?";
}

/** One TCP connection from p to the pod named to (its serveTcp server): undefined when it got through, else why not. */
async function blockedWhy(p: P, to: string): Promise<string | undefined> {
  const r = await tcpRequest(p.pod!, pod(to).ip!, PORT, { timeoutMs: 1500 });
  return r.ok ? undefined : (r.error ?? "no reply");
}

const REASON: Record<string, string> = { timeout: "no answer: dropped", ECONNREFUSED: "refused" };
/** One connection from p to the pod named to, as a line. */
async function show(p: P, to: string, why: string): Promise<void> {
  const err = await blockedWhy(p, to);
  const lbl = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(",");
  const src = `${p.ns}/${p.name}${lbl ? ` (${lbl})` : ""}`;
  say(`  ${err ? "blocked" : "reached"}  ${src.padEnd(26)} -> ${pod(to).ns}/${to}:${PORT}  ${why}${err ? ` (${REASON[err] ?? err})` : ""}`);
}

/** Waits until a connection from p to `to` gets through (ok) or not: the agent applied the change. */
async function settle(p: P, to: string, ok: boolean): Promise<void> {
  await waitFor(`${p.name} -> ${to} ${ok ? "allowed" : "denied"}`, async () => (await blockedWhy(p, to) === undefined) === ok, 15_000);
  say(`  ... the agents applied the change (probed until it held)`);
}

/** ovsplanectl policies and trace on node a, naming the policy. */
async function explain(a: AgentRun): Promise<void> {
  const ctl = (...args: string[]) => a.node.exec([join(BIN_DIR, "ovsplanectl"), ...args, "--conf-dir", a.confDir], { allowFail: true });
  say("\n  ovsplanectl policies on node a:");
  for (const l of (await ctl("policies")).stdout.trimEnd().split("\n")) say(`    ${l}`);
  for (const from of ["web", "batch"]) {
    const t = (await ctl("trace", "--from", `shop/${from}`, "--to", `${pod("api-a").ip}:${PORT}`)).stdout.trimEnd().split("\n");
    const line = t.find((l) => /allowed by|dropped by/.test(l)) ?? t[t.length - 1] ?? "";
    say(`  ovsplanectl trace --from shop/${from} --to shop/api-a:${PORT}\n    ${line.slice(Math.max(0, line.search(/allowed by|dropped by/)))}`);
  }
}

/** The Service and its EndpointSlice (both api pods ready). */
async function upsertService(bed: AgentBed): Promise<void> {
  await bed.api!.upsert("services", {
    apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "shop" },
    spec: { type: "ClusterIP", clusterIP: VIP, clusterIPs: [VIP], selector: { app: "api" }, ports: [{ name: "http", protocol: "TCP", port: 80, targetPort: PORT }] },
  });
  const ep = (n: string) => ({ addresses: [pod(n).ip!], conditions: { ready: true }, nodeName: pod(n).node, targetRef: { kind: "Pod", namespace: "shop", name: n } });
  await bed.api!.upsert("endpointslices", {
    apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "api-abc", namespace: "shop", labels: { "kubernetes.io/service-name": "api" } },
    addressType: "IPv4", ports: [{ name: "http", protocol: "TCP", port: PORT }], endpoints: [ep("api-a"), ep("api-b")],
  });
}

/** Node n's DNAT flows for the VIP in the ServiceDNAT table: how many, and their packets summed. */
async function dnatFlows(n: SimNode): Promise<{ flows: number; packets: number }> {
  const out = await n.ofctl("dump-flows", "br-int", `table=${Table.ServiceDNAT}`);
  const lines = out.split("\n").filter((l) => l.includes(`nw_dst=${VIP},`) && l.includes("actions=ct("));
  return { flows: lines.length, packets: lines.reduce((a, l) => a + Number(/n_packets=(\d+)/.exec(l)?.[1] ?? 0), 0) };
}
