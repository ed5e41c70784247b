// Policy benchmark: ovsplane-agent on a simulated node, the fake API server holding 1,000 Pods and 100 NetworkPolicies,
// 100 pod ports on the node; full sync, one Pod event and one policy event until A's policy flows are written, flow count, agent RSS.
import { readFileSync } from "node:fs";
import { AgentBed, NET } from "../test/harness/agentbed.ts";
import { readFlows } from "../lib/node/flows.ts";
import { cookie, CookieKind, KIND_MASK } from "../lib/dataplane/pipeline.ts";
import { encodeTags } from "../lib/dataplane/attachment.ts";
import { renderFlow } from "../lib/ovs/flow-text.ts";

const PODS = Number(process.env.BENCH_PODS ?? 1000);
const LOCAL = Number(process.env.BENCH_LOCAL_PODS ?? 100);
const POLICIES = Number(process.env.BENCH_POLICIES ?? 100);
const NS = 20;
const TARGET = { syncMs: 5000, eventMs: 1000 };
const say = (s = "") => process.stdout.write(`${s}\n`);

const podIP = (i: number) => (i < LOCAL ? `10.244.1.${10 + i}` : `10.${100 + Math.floor(i / 250)}.${i % 250}.${(i % 200) + 20}`);
const podObj = (i: number, labels: Record<string, string>) => ({
  metadata: { name: `p${i}`, namespace: `ns${i % NS}`, labels },
  spec: { nodeName: i < LOCAL ? "a" : "b", containers: [{ name: "c", image: "scratch", ports: [{ name: "http", containerPort: 8000 + (i % 3) }] }] },
  status: { podIP: podIP(i), podIPs: [{ ip: podIP(i) }] },
});
const labelsOf = (i: number) => ({ app: `app${i % 10}`, tier: i % 2 ? "front" : "back" });
const policyObj = (i: number) => ({
  apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", metadata: { name: `pol${i}`, namespace: `ns${i % NS}` },
  spec: {
    podSelector: { matchLabels: { app: `app${i % 10}` } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: `t${i % 5}` } }, podSelector: { matchLabels: { tier: "front" } } }], ports: [{ port: 80 }, { port: "http" }] }],
    ...(i % 4 === 0 ? { egress: [{ to: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["10.101.0.0/16"] } }], ports: [{ port: 443 }, { port: 1000, endPort: 1100 }] }] } : {}),
  },
});

const bed = new AgentBed();

async function main(): Promise<void> {
  await bed.setup([{ metadata: { name: "default" } }, ...Array.from({ length: NS }, (_, i) => ({ metadata: { name: `ns${i}`, labels: { team: `t${i % 5}` } } }))]);
  await bed.startAgents(["--gc-grace", "3600"]);
  const A = bed.A;
  const agent = bed.agents.find((a) => a.node === A)!;
  const sock = A.ofSocket("br-int");
  const policyFlows = async () => (await readFlows(sock, [{ cookie: cookie(CookieKind.Policy, 0n), mask: KIND_MASK }])).map(renderFlow);
  // LOCAL pod ports on A (internal ports with a pod's tags, as an ADD leaves them), their Pods and the rest of the cluster's.
  const add: string[] = [];
  for (let i = 0; i < LOCAL; i++) {
    const tags = encodeTags({ network: NET, containerID: `bench-${i}`, ifname: "eth0", netns: "/var/run/netns/none", segment: 1, ips: [`${podIP(i)}/24`], mac: `0a:58:0a:f4:02:${(i % 256).toString(16).padStart(2, "0")}`, podNamespace: `ns${i % NS}`, podName: `p${i}` });
    add.push("--", "add-port", "br-int", `bp${i}`, "--", "set", "interface", `bp${i}`, "type=internal", "--", "set", "port", `bp${i}`, ...Object.entries(tags).map(([k, v]) => `external_ids:${k}="${v}"`));
  }
  await A.vsctl(...add);
  for (let i = 0; i < PODS; i++) await bed.api!.upsert("pods", podObj(i, labelsOf(i)));
  await new Promise((r) => setTimeout(r, 2000));
  say(`policy benchmark: ${PODS} Pods (${LOCAL} on node a), ${POLICIES} NetworkPolicies in ${NS} namespaces`);
  // Full sync: every policy created; timed until A's policy flows stop changing.
  const t0 = performance.now();
  for (let i = 0; i < POLICIES; i++) await bed.api!.upsert("networkpolicies", policyObj(i));
  const upserted = performance.now() - t0;
  let last = "";
  let stableSince = performance.now();
  let flows: string[] = [];
  let doneAt = t0;
  for (;;) {
    flows = await policyFlows();
    const k = flows.sort().join("\n");
    if (k !== last) {
      last = k;
      stableSince = performance.now();
      doneAt = stableSince;
    } else if (performance.now() - stableSince > 3000) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const syncMs = doneAt - t0;
  const conj = flows.filter((f) => f.includes("conjunction(")).length;
  say(`full sync: ${flows.length} policy flows (${conj} shared clause flows) on node a ${syncMs.toFixed(0)} ms after the first policy (the ${POLICIES} creations took ${upserted.toFixed(0)} ms)`);
  // One Pod event: a front peer turns back (it leaves every rule that names it).
  const peer = Array.from({ length: PODS }, (_, i) => i).find((i) => i >= LOCAL && i % NS === 5 && i % 2 === 1)!;
  const timeEvent = async (what: string, fn: () => Promise<unknown>) => {
    const before = (await policyFlows()).sort().join("\n");
    const t = performance.now();
    await fn();
    for (;;) {
      const now = (await policyFlows()).sort().join("\n");
      if (now !== before) break;
      if (performance.now() - t > 10_000) throw new Error(`${what}: no policy flow changed within 10 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - t;
    say(`${what}: policy flows changed ${ms.toFixed(0)} ms after the API write (target ${TARGET.eventMs} ms: ${ms <= TARGET.eventMs ? "met" : "MISSED"})`);
  };
  await timeEvent(`one Pod event (p${peer} relabelled)`, () => bed.api!.upsert("pods", podObj(peer, { ...labelsOf(peer), tier: "back" })));
  await timeEvent("one policy event (a new policy selecting app0 in ns0)", () => bed.api!.upsert("networkpolicies", { ...policyObj(0), metadata: { name: "extra", namespace: "ns0" } }));
  if (process.env.BENCH_LOG) for (const l of readFileSync(agent.log, "utf8").split("\n").filter((x) => /policy flow|policy inputs|reconcile of|OpenFlow bundle|node-wide flows diffed|pod ports read/.test(x)).slice(-14)) say(`  agent: ${l}`);
  const status = readFileSync(`/proc/${agent.child.pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0) / 1024;
  say(`agent RSS ${kb("VmRSS").toFixed(0)} MiB (peak ${kb("VmHWM").toFixed(0)} MiB)`);
  say(`full sync target ${TARGET.syncMs} ms: ${syncMs <= TARGET.syncMs ? "met" : "MISSED"}`);
}

main()
  .catch((e: unknown) => {
    process.exitCode = 1;
    console.error(e);
  })
  .finally(() => bed.teardown());
