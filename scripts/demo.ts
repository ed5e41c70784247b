// The demo: two simulated nodes joined by VXLAN, pods in segments, Services through kube-proxy's rules, egress; then the agent part (scripts/demo-agent.ts).
import { createNode, connectNodes, teardownAll, teardownOnSignals, type SimNode } from "../test/harness/testbed.ts";
import { applyKubeProxy, type KubeProxyService } from "../test/harness/kubeproxy.ts";
import { createOutsideHost, probeTcp } from "../test/harness/outside.ts";
import { addPod, netConf, rmTemp, tempDir, type AttachedPod } from "../test/integration/common.ts";
import { agentDemo } from "./demo-agent.ts";

const say = (s = "") => process.stdout.write(`${s}\n`);
const mark = (ok: boolean) => (ok ? "reached" : "blocked");

async function main(): Promise<void> {
  teardownOnSignals();
  const dirs = [tempDir(), tempDir()];
  process.once("exit", () => dirs.forEach(rmTemp)); // also when a signal ends the process mid-way
  try {
    say("=== Part 1: static mode (the conflist names the peers by hand) ===");
    say("ovsplane demo: two simulated Kubernetes nodes, each a network namespace running its own");
    say("Open vSwitch (userspace datapath), joined by an underlay cable; pods attached by the real");
    say("ovsplane CNI executable (dist/bin/ovsplane) through the CNI protocol.\n");
    const A = await createNode({ name: "node-a", underlayIP: "198.18.0.1" });
    const B = await createNode({ name: "node-b", underlayIP: "198.18.0.2" });
    await connectNodes(A, B);
    say(`node-a  underlay 198.18.0.1  pod range 10.244.1.0/24`);
    say(`node-b  underlay 198.18.0.2  pod range 10.244.2.0/24\n`);
    for (const n of [A, B]) {
      await n.exec(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
      await n.exec(["ip", "route", "replace", "default", "via", "198.18.0.254", "dev", n.underlayBridge]);
    }
    const extra = { globalSegments: [1], clusterCIDR: "10.244.0.0/16" };
    const confA = netConf(A, { podCIDR: "10.244.1.0/24", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }], dataDir: dirs[0]!, extra });
    const confB = netConf(B, { podCIDR: "10.244.2.0/24", peers: [{ nodeIP: "198.18.0.1", podCIDR: "10.244.1.0/24" }], dataDir: dirs[1]!, extra });
    const plan: [SimNode, Record<string, unknown>, string, number][] = [
      [A, confA, "web-a", 100], [A, confA, "db-a", 200], [B, confB, "web-b", 100], [B, confB, "db-b", 200], [B, confB, "dns-b", 1],
    ];
    const pods: Record<string, AttachedPod> = {};
    for (const [node, conf, name, seg] of plan) {
      const t0 = Date.now();
      pods[name] = await addPod(node, conf, name, seg);
      const host = pods[name]!.result.json.interfaces[0].name;
      say(`CNI ADD ${name.padEnd(6)} on ${node.name}: segment ${seg}, eth0 ${pods[name]!.ip}, OVS port ${host} (${Date.now() - t0} ms)`);
    }
    say("\nWho reaches whom (ping; the segment is the VXLAN VNI):");
    const pairs: [string, string, string][] = [
      ["web-a", "web-b", "same segment 100, across the VXLAN tunnel"],
      ["db-b", "db-a", "same segment 200, across the VXLAN tunnel"],
      ["web-a", "db-a", "segment 100 -> 200, same node"],
      ["web-a", "db-b", "segment 100 -> 200, across nodes"],
    ];
    for (const [from, to, why] of pairs) {
      const ok = await pods[from]!.pod.ping(pods[to]!.ip, { tries: from === "web-a" && to === "web-b" ? 6 : 3 });
      say(`  ${mark(ok)}  ${from} -> ${to} (${pods[to]!.ip})  ${why}`);
    }
    const tcp = await pods["web-a"]!.pod.tcpCheck(pods["web-b"]!.pod, pods["web-b"]!.ip, 8080);
    say(`  ${mark(tcp)}  web-a -> web-b TCP port 8080`);
    const nodeOk = (await A.exec(["ping", "-n", "-c", "1", "-W", "2", pods["db-a"]!.ip], { allowFail: true })).code === 0;
    say(`  ${mark(nodeOk)}  node-a -> db-a  (the node reaches its pods of every segment: kubelet probes)`);
    const nodeRemote = (await A.exec(["ping", "-n", "-c", "2", "-W", "2", pods["db-b"]!.ip], { allowFail: true })).code === 0;
    say(`  ${mark(nodeRemote)}  node-a -> db-b  (and every other node's pods: the API server calling a webhook)`);
    say("\nServices (kube-proxy's own iptables rules on both nodes; ClusterIPs in 10.96.0.0/12):");
    const svc = (name: string, clusterIP: string, backend: string): KubeProxyService => ({
      name, namespace: "default", clusterIP, port: 80, protocol: "tcp", endpoints: [{ ip: pods[backend]!.ip, port: 8080 }],
    });
    const services = [svc("web", "10.96.0.10", "web-b"), svc("db", "10.96.0.11", "db-b"), svc("dns", "10.96.0.12", "dns-b")];
    for (const n of [A, B]) await applyKubeProxy(n, { clusterCIDR: "10.244.0.0/16", services });
    const viaService: [string, string, string, string][] = [
      ["web-a", "10.96.0.10", "web-b", "Service web (segment 100, backend on node-b)"],
      ["web-a", "10.96.0.11", "db-b", "Service db (backends in segment 200): a Service opens no path between segments"],
      ["db-a", "10.96.0.12", "dns-b", "Service dns (global segment 1: every segment reaches it)"],
    ];
    for (const [from, ip, backend, why] of viaService) {
      const r = await probeTcp(pods[from]!.pod, pods[backend]!.pod, ip, 80, { serverPort: 8080, timeoutMs: 3000 });
      const seen = r.served[0]?.peer;
      say(`  ${mark(r.client.ok)}  ${from} -> ${ip}:80  ${why}${seen ? `; the backend saw ${seen}` : ""}`);
    }
    const outside = await createOutsideHost({ address: "198.18.0.100/24" });
    const egress = await probeTcp(pods["web-a"]!.pod, outside, outside.ip, 9000, { timeoutMs: 3000 });
    say(`  ${mark(egress.client.ok)}  web-a -> ${outside.ip} (a host outside the cluster): it saw ${egress.served[0]?.peer ?? "nothing"} (masqueraded to node-a)`);
    const flows = await A.dumpFlows("br-int");
    say(`\nnode-a's bridge br-int holds ${flows.length} OpenFlow flows: per local pod, per segment, per peer node, none per remote pod.`);
    say("The flow that sends segment traffic to node-b:");
    say(`  ${flows.find((l) => l.includes("tun_dst")) ?? "(none)"}`);
    say("\nStatic part done; tearing its simulated nodes down.");
  } finally {
    await teardownAll();
    dirs.forEach(rmTemp);
  }
  await agentDemo();
  say("\nDemo done.");
}

let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => { interrupted = true; });
main().catch((e) => {
  const lines = (e instanceof Error ? e.message : String(e)).split("\n");
  const msg = lines.length > 2 ? `${lines[0]} ... ${lines[lines.length - 1]}` : lines.join(" ");
  process.stderr.write(interrupted ? "demo interrupted; everything it made is torn down\n" : `demo failed: ${msg}\n`);
  process.exitCode = 1;
});
