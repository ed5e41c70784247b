// make bench (agent part): ovsplane-agent on one simulated node against the fake API server holding 1,000 Nodes;
// initial sync, one Node event, flow changes per event, peak RSS, with the targets.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnApiServer, type ApiServerProcess } from "../test/harness/apiserver/process.ts";
import { createOutsideHost } from "../test/harness/outside.ts";
import { createNode, pidAlive, sleep, testbed, teardownAll, teardownOnSignals, type SimNode } from "../test/harness/testbed.ts";
import { killPid } from "../test/harness/netns.ts";
import { HeldSwitch, readFlows } from "../lib/node/flows.ts";
import { parseProcRoutes } from "../lib/host/routes.ts";
import { routeFlows } from "../lib/dataplane/builders.ts";
import { CookieKind, cookie, EXACT_MASK, KIND_MASK, routeCookie } from "../lib/dataplane/pipeline.ts";
import { networkId } from "../lib/dataplane/names.ts";
import { cidrContains, parseIp } from "../lib/net/ip.ts";
import { BIN_DIR, rmTemp, tempDir } from "../test/integration/common.ts";

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10);
const NET = "podnet";
/** The cluster CIDR of the template (BENCH_CLUSTER_CIDR=none: none, so the masquerade chain lists every peer range). */
const CLUSTER_CIDR = process.env.BENCH_CLUSTER_CIDR === "none" ? undefined : (process.env.BENCH_CLUSTER_CIDR ?? "10.0.0.0/8");
const TARGET = { syncMs: 2000, eventMs: 50, rssMiB: 100 };
const say = (s = "") => process.stdout.write(`${s}\n`);

const nodeObj = (name: string, ip: string, podCIDR: string) => ({
  metadata: { name },
  spec: { podCIDR, podCIDRs: [podCIDR] },
  status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }] },
});
/** Peer i (1-based): pod range 10.x.y.0/24, address in 198.19.0.0/16 (198.18/15; nothing is sent there). */
const peer = (i: number) => ({ name: `peer-${String(i).padStart(4, "0")}`, ip: `198.19.${i >> 8}.${i & 255}`, podCIDR: `10.${i >> 8}.${i & 255}.0/24` });

const flowText = (f: unknown) => JSON.stringify(f, (_, v) => (typeof v === "bigint" ? v.toString() : v));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000, pollMs = 2): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    if (pollMs) await sleep(pollMs);
  }
}

/** Peak resident set of a process (VmHWM), MiB. */
function peakRssMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Main-table routes of proto 111 in the node's netns (one `ip` call). */
async function routes111(node: SimNode): Promise<string[]> {
  const r = await node.exec(["ip", "-j", "route", "show", "proto", "111"]);
  return (JSON.parse(r.stdout) as { dst: string }[]).map((x) => x.dst);
}

export interface AgentFigures {
  nodes: number;
  syncMs: number;
  syncReconcileMs: number;
  eventMs: number;
  eventReconcileMs: number;
  flowChangesPerEvent: number[];
  otherFlowsTouched: number;
  rssMiB: number;
}

/** Runs the agent benchmark; prints its lines and returns the figures. */
export async function benchAgent(): Promise<AgentFigures> {
  const dir = tempDir("ovsp-agent-bench-");
  let api: ApiServerProcess | undefined;
  let child: ChildProcess | undefined;
  try {
    const node = await createNode({ name: "abench", underlayIP: "198.18.0.1" });
    await testbed.attachUnderlay(node);
    const host = await createOutsideHost({ name: "apisrv", address: "198.18.0.200/24" });
    mkdirSync(join(dir, "api"));
    api = await spawnApiServer({ listen: "198.18.0.200:6443", dir: join(dir, "api"), netns: host.netns });
    await api.upsert("namespaces", { metadata: { name: "default" } });
    await api.upsert("nodes", nodeObj("abench", node.underlayIP, "10.250.0.0/24"));
    for (let i = 1; i < NODES; i += 50) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(NODES, i + 50); j++) batch.push(api.upsert("nodes", nodeObj(peer(j).name, peer(j).ip, peer(j).podCIDR)));
      await Promise.all(batch);
    }
    const peers = NODES - 1;
    const tmpl = join(dir, "template.json");
    writeFileSync(tmpl, JSON.stringify({
      cniVersion: "1.0.0",
      name: NET,
      plugins: [{
        type: "ovsplane", bridge: "br-int", datapathType: "netdev", ovsdbSocket: node.ovsdbSocket, segment: 1, clusterCIDR: CLUSTER_CIDR,
        ipam: { type: "ovsplane-ipam", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(dir, "ipam") },
        logFile: join(dir, "cni.log"),
      }],
    }));
    const ofSocket = node.ofSocket("br-int");
    const netId = networkId(NET);
    const routeScope = [{ cookie: cookie(CookieKind.Route, 0n), mask: KIND_MASK }];
    const argv = [process.env.BENCH_AGENT ?? join(BIN_DIR, "ovsplane-agent"), "--kubeconfig", api.kubeconfig, "--node-name", "abench", "--conf-file", tmpl,
      "--cni-conf-dir", join(dir, "net.d"), "--state-dir", join(dir, "state"), "--listen", "127.0.0.1:9109"];
    let log = "";
    const t0 = performance.now();
    // `ip netns exec` execs the agent in place: the child's pid is the agent's.
    child = spawn("ip", ["netns", "exec", node.netns, ...argv], { env: { ...process.env, ...node.env }, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
    const rssTrace: string[] = [];
    const sampler = setInterval(() => {
      try {
        const st = readFileSync(`/proc/${child!.pid}/status`, "utf8");
        rssTrace.push(`${(performance.now() - t0).toFixed(0)}:${Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(st)?.[1]) / 1024)}`);
      } catch { /* not yet */ }
    }, 25);
    const flowsPerPeer = routeFlows(netId, { nodeIP: "198.19.0.1", podCIDR: "10.0.1.0/24" }, { tunnel: 1, gateway: 2, gatewayMAC: "00:00:00:00:00:01" }).length;
    await until(`${peers} peers' flows`, async () => (await readFlows(ofSocket, routeScope).catch(() => [])).length >= peers * flowsPerPeer, 60_000, 5);
    // With clusterCIDR one route covers every peer (routedRanges); without, one route per peer.
    await until(`${peers} peers' routes`, async () => (CLUSTER_CIDR ? (await routes111(node)).includes(CLUSTER_CIDR) : (await routes111(node)).length >= peers), 60_000, 0);
    const syncMs = performance.now() - t0;
    clearInterval(sampler);
    if (process.env.BENCH_SHOW) say(`RSS (ms:MiB) during the sync: ${rssTrace.join(" ")}`);
    await sleep(300); // let the reconcile's log line arrive
    const reconciles = () => [...log.matchAll(/reconciled in ([\d.]+) ms: (.*)/g)].map((m) => ({ ms: Number(m[1]), what: m[2]! }));
    const syncReconcileMs = reconciles().filter((r) => /node-wide flow changes/.test(r.what)).reduce((a, r) => a + r.ms, 0);

    // Events: a new Node, then a pod range change of it; each must bring its flows and route and touch nothing else.
    const eventMs: number[] = [];
    const eventRec: number[] = [];
    const changes: number[] = [];
    let otherTouched = 0;
    // Polled with as little overhead as possible: one held OpenFlow connection, the agent's netns's routes read from
    // /proc/<agent>/net/route (no subprocess), so the figure is the agent's, not the poll's.
    const sw = new HeldSwitch();
    const routeVia = (dst: string) => parseProcRoutes(readFileSync(`/proc/${child!.pid}/net/route`, "utf8")).some((r) => (r.dst === dst || (CLUSTER_CIDR !== undefined && r.dst === CLUSTER_CIDR && cidrContains(CLUSTER_CIDR, dst.split("/")[0]!))) && r.dev === "ovsplane-gw");
    for (let e = 0; e < EVENTS; e++) {
      const p = peer(NODES + e);
      const cidr = e % 2 === 0 ? p.podCIDR : `10.200.${e}.0/24`;
      const mine = [{ cookie: routeCookie(netId, parseIp(p.ip).value), mask: EXACT_MASK }];
      const before = (await readFlows(ofSocket, routeScope)).filter((f) => f.cookie !== mine[0]!.cookie).map(flowText);
      const seen = reconciles().length;
      const s = performance.now();
      await api.upsert("nodes", nodeObj(`ev-${e}`, p.ip, cidr));
      await until(`event ${e}'s flows and route`, async () => routeVia(cidr) && (await sw.use(ofSocket, (x) => x.read(mine))).length >= flowsPerPeer, 10_000, 1);
      eventMs.push(performance.now() - s);
      await until(`event ${e}'s log line`, async () => reconciles().length > seen, 5000, 5);
      const rec = reconciles().slice(seen);
      eventRec.push(rec.reduce((a, r) => a + r.ms, 0));
      changes.push(rec.reduce((a, r) => a + Number(/(\d+) node-wide flow changes/.exec(r.what)?.[1] ?? 0), 0));
      const after = new Set((await readFlows(ofSocket, routeScope)).filter((f) => f.cookie !== mine[0]!.cookie).map(flowText));
      otherTouched += before.filter((f) => !after.has(f)).length;
      const seenRemove = reconciles().length;
      await api.remove("nodes", `ev-${e}`);
      await until(`event ${e}'s flows gone`, async () => (await readFlows(ofSocket, mine)).length === 0, 10_000, 5);
      await until(`event ${e}'s removal logged`, async () => reconciles().length > seenRemove, 5000, 5);
      await sleep(100);
    }
    sw.close();
    const rssMiB = peakRssMiB(child.pid!);
    const f: AgentFigures = {
      nodes: NODES, syncMs, syncReconcileMs, eventMs: median(eventMs), eventReconcileMs: median(eventRec),
      flowChangesPerEvent: changes, otherFlowsTouched: otherTouched, rssMiB,
    };
    say(`\novsplane-agent with ${NODES} Nodes (this node + ${peers} peers, clusterCIDR ${CLUSTER_CIDR ?? "none"}; Bun-compiled dist/bin/ovsplane-agent, fake API server):`);
    const line = (name: string, v: string, target: string, ok: boolean) => say(`  ${name.padEnd(44)} ${v.padStart(10)}   target ${target.padEnd(9)} ${verdict(ok)}`);
    line(`initial sync (start -> ${peers} peers' flows + routes)`, `${syncMs.toFixed(0)} ms`, `< ${TARGET.syncMs} ms`, syncMs < TARGET.syncMs);
    line(`one Node event -> flows + route (median of ${EVENTS})`, `${f.eventMs.toFixed(1)} ms`, `< ${TARGET.eventMs} ms`, f.eventMs < TARGET.eventMs);
    line("peak RSS (VmHWM)", `${rssMiB.toFixed(0)} MiB`, `< ${TARGET.rssMiB} MiB`, rssMiB < TARGET.rssMiB);
    const onePeer = changes.every((c) => c <= flowsPerPeer * 2 + 2) && otherTouched === 0; // a pod range change: the old flows deleted, the new added
    say(`  node-wide flow changes per event: ${[...new Set(changes)].join("/")} (${flowsPerPeer} route flows per peer; other peers' flows touched: ${otherTouched})   ${verdict(onePeer)}`);
    say(`  agent's own reconcile time: sync ${syncReconcileMs.toFixed(0)} ms, per event ${f.eventReconcileMs.toFixed(1)} ms (median, from its log)`);
    if (process.env.BENCH_SHOW) say(log);
    return f;
  } finally {
    if (child?.pid && pidAlive(child.pid)) await killPid(child.pid);
    await api?.close();
    await teardownAll();
    rmTemp(dir);
  }
}

if (process.argv[1]?.endsWith("bench-agent.ts")) {
  teardownOnSignals();
  benchAgent().catch((e) => {
    process.stderr.write(`agent bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
