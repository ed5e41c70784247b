// make bench (dataplane part): TCP pod -> pod across nodes through the full pipeline vs a minimal flow set, and via a Service.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createNode, connectNodes, teardownAll, teardownOnSignals, type SimNode, type SimPod } from "../test/harness/testbed.ts";
import { applyKubeProxy } from "../test/harness/kubeproxy.ts";
import { addPod, netConf, rmTemp, tempDir, type AttachedPod } from "../test/integration/common.ts";
import { gatewayMac, GATEWAY_PORT, tunnelPortName } from "../lib/dataplane/names.ts";
import { serviceFlows } from "../lib/dataplane/services.ts";
import { Table } from "../lib/dataplane/pipeline.ts";
import { applyFlows } from "../lib/node/flows.ts";

const ROUNDS = Number(process.env.BENCH_TCP_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_TCP_SECONDS ?? 4);
const SERVICE_IP = "10.96.0.20";
const PORT = 5201;
const say = (s = "") => process.stdout.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One iperf3 run from client to ip (the server runs once in server), in bits per second. */
async function iperf(client: SimPod, server: SimPod, ip: string): Promise<number> {
  const srv = server.exec(["iperf3", "-s", "-1", "-p", String(PORT)], { allowFail: true, timeoutMs: (SECONDS + 20) * 1000 });
  await server.exec(["sh", "-c", `for i in $(seq 100); do ss -Htln 'sport = :${PORT}' | grep -q . && exit 0; sleep 0.05; done`], { allowFail: true });
  const r = await client.exec(["iperf3", "-c", ip, "-p", String(PORT), "-t", String(SECONDS), "-J"], { allowFail: true, timeoutMs: (SECONDS + 15) * 1000 });
  await srv;
  const bps = (JSON.parse(r.stdout || "{}") as { end?: { sum_received?: { bits_per_second: number } } }).end?.sum_received?.bits_per_second;
  if (!bps) throw new Error(`iperf3 to ${ip} failed: ${r.stdout.slice(0, 300)} ${r.stderr}`);
  return bps;
}

/** The OpenFlow port number of an interface on a node. */
async function ofport(n: SimNode, name: string): Promise<number> {
  return Number(await n.vsctl("get", "Interface", name, "ofport"));
}

/**
 * A node's flow table as two files, to switch between: the full pipeline as ovsplane wrote it, and the
 * least any overlay needs (NORMAL-style: pod port -> tunnel to the peer with the VNI; tunnel -> pod port
 * with the pod's MAC as destination). The pod's gateway ARP entry is made permanent so both work alike.
 */
async function flowFiles(n: SimNode, p: AttachedPod, peerIP: string, vni: number): Promise<{ full: string; minimal: string }> {
  const pod = await ofport(n, String(p.result.json.interfaces[0].name));
  const tun = await ofport(n, tunnelPortName(4789));
  const mac = String(p.result.json.interfaces[1].mac);
  const gw = String(p.result.json.ips[0].gateway);
  const neigh = (await p.pod.exec(["ip", "neigh", "show", gw])).stdout.split(" ");
  const gwMac = neigh[neigh.indexOf("lladdr") + 1]!;
  await p.pod.exec(["ip", "neigh", "replace", gw, "lladdr", gwMac, "dev", "eth0", "nud", "permanent"]);
  const full = join(n.runDir, "flows-full.txt");
  const minimal = join(n.runDir, "flows-minimal.txt");
  writeFileSync(full, await n.ofctl("--no-stats", "dump-flows", "br-int"));
  writeFileSync(minimal, [
    `table=0,priority=100,in_port=${pod},actions=set_field:${peerIP}->tun_dst,set_field:${vni}->tun_id,output:${tun}`,
    `table=0,priority=100,in_port=${tun},actions=set_field:${mac}->eth_dst,output:${pod}`,
    "table=0,priority=0,actions=drop",
  ].join("\n") + "\n");
  return { full, minimal };
}

async function main(): Promise<void> {
  teardownOnSignals();
  const dirs = [tempDir(), tempDir()];
  try {
    const A = await createNode({ name: "tpa", underlayIP: "198.18.0.1" });
    const B = await createNode({ name: "tpb", underlayIP: "198.18.0.2" });
    await connectNodes(A, B);
    const nodes: [SimNode, string, string, string][] = [[A, "10.244.1.0/24", "198.18.0.2", "10.244.2.0/24"], [B, "10.244.2.0/24", "198.18.0.1", "10.244.1.0/24"]];
    const confs = nodes.map(([n, own, peer, peerCIDR], i) =>
      netConf(n, { podCIDR: own, peers: [{ nodeIP: peer, podCIDR: peerCIDR }], dataDir: dirs[i]!, segment: 100, extra: { clusterCIDR: "10.244.0.0/16" } }));
    for (const [n] of nodes) {
      await n.exec(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      await n.exec(["ip", "route", "replace", "default", "via", "198.18.0.254", "dev", n.underlayBridge]);
    }
    const client = await addPod(A, confs[0]!, "tp-client");
    const server = await addPod(B, confs[1]!, "tp-server");
    const services = [{ name: "iperf", namespace: "default", clusterIP: SERVICE_IP, port: PORT, protocol: "tcp" as const, endpoints: [{ ip: server.ip, port: PORT }] }];
    for (const [n] of nodes) await applyKubeProxy(n, { clusterCIDR: "10.244.0.0/16", services });
    // The Service in OVS, as the agent writes it (lib/dataplane/services.ts) on the client's node; kube-proxy's rules stay.
    const svc = { namespace: "default", name: "iperf", clusterIPs: [SERVICE_IP], ports: [{ protocol: "TCP" as const, port: PORT, targets: [{ ip: server.ip, port: PORT }] }] };
    const flows = serviceFlows(svc, { gateway: await ofport(A, GATEWAY_PORT), gatewayMAC: gatewayMac("br-int") });
    await applyFlows(A.ofSocket("br-int"), flows.map((flow) => ({ op: "add" as const, flow })));
    await client.pod.ping(server.ip, { tries: 5 });
    const files = [await flowFiles(A, client, "198.18.0.2", 100), await flowFiles(B, server, "198.18.0.1", 100)];
    const use = (which: "full" | "minimal") => Promise.all(nodes.map(([n], i) => n.ofctl("replace-flows", "br-int", files[i]![which])));
    const via: number[] = [];
    const direct: number[] = [];
    const minimal: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, so a drift in the machine's load hits every path alike.
      await use("minimal");
      minimal.push(await iperf(client.pod, server.pod, server.ip));
      await use("full");
      direct.push(await iperf(client.pod, server.pod, server.ip));
      via.push(await iperf(client.pod, server.pod, SERVICE_IP));
    }
    const g = (bps: number) => `${(bps / 1e9).toFixed(3)} Gbit/s`;
    const pipeline = median(direct) / median(minimal);
    const ratio = median(via) / median(direct);
    say(`\nTCP throughput across the overlay (iperf3, ${ROUNDS} interleaved ${SECONDS} s runs each, median; OVS userspace datapath):`);
    say(`  pod -> pod, minimal flow set (3 flows)  ${g(median(minimal)).padStart(14)}   runs ${minimal.map(g).join(", ")}`);
    say(`  pod -> pod, full pipeline               ${g(median(direct)).padStart(14)}   runs ${direct.map(g).join(", ")}`);
    say(`  pod -> Service (in OVS) -> pod, remote  ${g(median(via)).padStart(14)}   runs ${via.map(g).join(", ")}`);
    say(`  full pipeline / minimal flow set        ${pipeline.toFixed(2).padStart(14)}   target >= 0.95 ${pipeline >= 0.95 ? "met" : "MISSED"}`);
    say(`  Service / direct                        ${ratio.toFixed(2).padStart(14)}   target >= 0.90 ${ratio >= 0.9 ? "met" : "MISSED"}`);
    // The Service runs must have been DNAT'd in OVS, not by kube-proxy in the node: node A's ServiceDNAT counters say so.
    const dnat = [...(await A.ofctl("dump-flows", "br-int", `table=${Table.ServiceDNAT}`)).matchAll(/n_packets=(\d+).*actions=ct\(/g)].reduce((x, m) => x + Number(m[1]), 0);
    say(`  Service connections DNAT'd in OVS       ${String(dnat).padStart(14)}   first packets of connections through node A's ServiceDNAT flows (last round; 0: not in OVS)`);
  } finally {
    await teardownAll();
    dirs.forEach(rmTemp);
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
