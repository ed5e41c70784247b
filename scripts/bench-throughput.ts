// make bench (dataplane part): TCP throughput pod -> Service (kube-proxy's rules) -> pod on another node vs pod -> pod.
import { createNode, connectNodes, teardownAll, teardownOnSignals, type SimNode, type SimPod } from "../test/harness/testbed.ts";
import { applyKubeProxy } from "../test/harness/kubeproxy.ts";
import { addPod, netConf, rmTemp, tempDir } from "../test/integration/common.ts";

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
    await client.pod.ping(server.ip, { tries: 5 });
    const via: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      // Interleaved, so a drift in the machine's load hits both paths alike.
      via.push(await iperf(client.pod, server.pod, SERVICE_IP));
      direct.push(await iperf(client.pod, server.pod, server.ip));
    }
    const g = (bps: number) => `${(bps / 1e9).toFixed(3)} Gbit/s`;
    const ratio = median(via) / median(direct);
    say(`\nTCP throughput across the overlay (iperf3, ${ROUNDS} interleaved ${SECONDS} s runs each, median; OVS userspace datapath):`);
    say(`  pod -> pod on another node            ${g(median(direct)).padStart(14)}   runs ${direct.map(g).join(", ")}`);
    say(`  pod -> Service -> pod on another node ${g(median(via)).padStart(14)}   runs ${via.map(g).join(", ")}`);
    say(`  Service / direct                      ${ratio.toFixed(2).padStart(14)}   target >= 0.90 ${ratio >= 0.9 ? "PASS" : "MISS"}`);
  } finally {
    await teardownAll();
    dirs.forEach(rmTemp);
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
