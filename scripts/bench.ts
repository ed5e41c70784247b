// make bench: ovsplane vs Debian's bridge + host-local through libcni: cycle, CPU, concurrency, fresh node, start-up, peers.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createNode, createPod, runDriver, teardownAll, teardownOnSignals, type SimNode, type SimPod } from "../test/harness/testbed.ts";
import { BIN_DIR, netConf, OVSPLANE, REF_DIR, rmTemp, tempDir } from "../test/integration/common.ts";
import { REPO_ROOT } from "../test/harness/testbed.ts";
import { childrenCpuMs, median, pct, procCpuMs, Table } from "./bench/stats.ts";
import { emptyBunExecutable, versionRoundTrips } from "./bench/startup.ts";

const CYCLES = Number(process.env.BENCH_CYCLES ?? 30);
const CONCURRENT = 20;
const FRESH = 100;
const VERSION_RUNS = Number(process.env.BENCH_VERSION_RUNS ?? 200);
const PEER_ADDS = Number(process.env.BENCH_PEER_ADDS ?? 15);
const say = (s = "") => process.stdout.write(`${s}\n`);
/** BENCH_PARTS=cycles,burst,version,peers runs only those parts (default: all). */
const PARTS = new Set((process.env.BENCH_PARTS ?? "cycles,burst,version,peers").split(","));

/** One side of the comparison: a conflist and the CNI_PATH its plugins are found in. */
interface Side {
  label: string;
  conflist: (node: SimNode, dir: string) => object;
  path: string[];
}

const ours: Side = {
  label: "ovs",
  path: [BIN_DIR, REF_DIR],
  conflist: (node, dir) => ({
    cniVersion: "1.0.0", name: "podnet",
    plugins: [{ ...netConf(node, { podCIDR: "10.244.0.0/22", dataDir: dir, extra: { mtu: 1450 } }), cniVersion: undefined, name: undefined }],
  }),
};
const ref: Side = {
  label: "ref",
  path: [REF_DIR],
  conflist: (_node, dir) => ({
    cniVersion: "1.0.0", name: "refnet",
    plugins: [{ type: "bridge", bridge: "cni-bench0", isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/22" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: dir } }],
  }),
};

/** Runs one driver command and throws with its stderr when it fails. */
async function call(node: SimNode, side: Side, conflist: object, command: "add" | "del", containerID: string, pod: SimPod): Promise<void> {
  const r = await runDriver({ node, command, conflist, containerID, netns: pod, path: side.path, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`${side.label} ${command} ${containerID}: ${r.stderr}`);
}

/** ADD+DEL cycles of both sides, interleaved: wall time and the CPU of every process of each cycle. */
async function cycles(node: SimNode, sides: { side: Side; conflist: object; pod: SimPod }[]): Promise<{ times: number[]; cpu: number[] }[]> {
  const out = sides.map(() => ({ times: [] as number[], cpu: [] as number[] }));
  for (let i = 0; i < CYCLES + 3; i++) {
    for (const [j, s] of sides.entries()) {
      const [t0, c0] = [performance.now(), childrenCpuMs()];
      await call(node, s.side, s.conflist, "add", `b-${s.side.label}-${i}`, s.pod);
      await call(node, s.side, s.conflist, "del", `b-${s.side.label}-${i}`, s.pod);
      if (i >= 3) out[j]!.times.push(performance.now() - t0), out[j]!.cpu.push(childrenCpuMs() - c0); // 3 warm-up cycles
    }
  }
  return out;
}

/** n concurrent ADDs (total wall time, failures), then their DELs. */
async function burst(node: SimNode, side: Side, conflist: object, n: number, tag: string): Promise<{ ms: number; failed: number }> {
  const pods = await Promise.all(Array.from({ length: n }, (_, i) => createPod(`${tag}${i}`)));
  const t0 = performance.now();
  const adds = await Promise.all(pods.map((p, i) => runDriver({ node, command: "add", conflist, containerID: `${tag}-${i}`, netns: p, path: side.path, timeoutMs: 180_000 })));
  const ms = performance.now() - t0;
  await Promise.all(pods.map((p, i) => runDriver({ node, command: "del", conflist, containerID: `${tag}-${i}`, netns: p, path: side.path, timeoutMs: 180_000 })));
  await Promise.all(pods.map((p) => p.destroy()));
  return { ms, failed: adds.filter((r) => r.code !== 0).length };
}

/** The OVS daemons' CPU (ms) of a node so far. */
function ovsCpuMs(node: SimNode): number {
  return ["ovsdb", "vswitchd"].reduce((a, d) => a + procCpuMs(Number(readFileSync(join(node.runDir, `${d}.pid`), "utf8").trim())), 0);
}

/** ADD latency on a node with 1 static peer and on one with 1,000, interleaved (DELs not timed). */
async function peerScaling(dir: string): Promise<{ one: number; many: number; first: number; runtimeOne: number; runtimeMany: number; inFile: number }> {
  const peersOf = (n: number) => Array.from({ length: n }, (_, i) => ({ nodeIP: `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`, podCIDR: `10.${(i >> 8) + 1}.${i & 255}.0/24` }));
  const nodes = await Promise.all([
    createNode({ name: "bp1", underlayIP: "198.18.9.2" }), createNode({ name: "bpk", underlayIP: "198.18.9.3" }), createNode({ name: "bpf", underlayIP: "198.18.9.6" }),
  ]);
  // Written once, as a runtime finds it in /etc/cni/net.d (not serialized again for every call): 1 peer, 1,000
  // inline, 1,000 in a peersFile.
  writeFileSync(join(dir, "peers.json"), JSON.stringify(peersOf(1000)));
  const confs = nodes.map((node, k) => {
    const file = join(dir, `peers${k}.conflist`);
    const peers = k === 2 ? { peers: undefined, peersFile: join(dir, "peers.json") } : { peers: peersOf(k ? 1000 : 1) };
    writeFileSync(file, JSON.stringify({
      cniVersion: "1.0.0", name: "podnet",
      plugins: [{ ...netConf(node, { podCIDR: "10.244.0.0/22", dataDir: join(dir, `p${k}`), extra: { mtu: 1450, clusterCIDR: "10.0.0.0/8", ...peers } }), cniVersion: undefined, name: undefined }],
    }));
    return { file };
  });
  // The runtime's own share: the same conflists through libcni to a no-op "ovsplane" that reads stdin and answers.
  const noopDir = join(dir, "noop");
  mkdirSync(noopDir, { recursive: true });
  writeFileSync(join(noopDir, "ovsplane"), `#!/bin/sh\ncat >/dev/null\n[ "$CNI_COMMAND" = ADD ] && echo '{"cniVersion":"1.0.0","ips":[{"address":"10.244.0.5/22"}]}'\nexit 0\n`, { mode: 0o755 });
  const noop: Side = { label: "noop", path: [noopDir], conflist: () => ({}) };
  const pod = await createPod("bpeers");
  const times: number[][] = [[], [], [], [], []];
  let first = 0;
  for (let i = 0; i < PEER_ADDS + 1; i++) {
    for (const k of [0, 1, 2]) {
      const t0 = performance.now();
      await call(nodes[k]!, ours, confs[k]!, "add", `pe-${i}`, pod);
      const ms = performance.now() - t0;
      if (i > 0 && k < 2) times[k]!.push(ms);
      else if (i === 0 && k === 1) first = ms; // the first ADD writes the 1,000 peers' flows, routes and the fingerprint
      await call(nodes[k]!, ours, confs[k]!, "del", `pe-${i}`, pod);
      if (k === 2) {
        if (i > 0) times[4]!.push(ms);
        continue;
      }
      const t1 = performance.now();
      await call(nodes[k]!, noop, confs[k]!, "add", `pn-${i}`, pod);
      if (i > 0) times[k + 2]!.push(performance.now() - t1);
      await call(nodes[k]!, noop, confs[k]!, "del", `pn-${i}`, pod);
    }
  }
  return { one: median(times[0]!), many: median(times[1]!), first, runtimeOne: median(times[2]!), runtimeMany: median(times[3]!), inFile: median(times[4]!) };
}

type Sides = { side: Side; conflist: object; pod: SimPod }[];

/** Interleaved ADD+DEL cycles: wall time, CPU of the calls, and the OVS daemons' CPU on top. */
async function cyclePart(node: SimNode, sides: Sides): Promise<void> {
  const ovs0 = ovsCpuMs(node);
  const [o, r] = await cycles(node, sides);
  const ovsPerCycle = (ovsCpuMs(node) - ovs0) / (CYCLES + 3); // the OVS daemons' CPU over ovsplane's cycles (idle included)
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const t = new Table(say, `ms (${CYCLES} interleaved cycles)`);
  t.head();
  t.row("ADD+DEL cycle, median", median(o!.times), median(r!.times), 1.0);
  t.row("ADD+DEL cycle, p90", pct(o!.times, 90), pct(r!.times, 90));
  t.row("CPU (user+sys) per cycle, mean", mean(o!.cpu), mean(r!.cpu), 1.0);
  t.row("  + ovsdb-server, ovs-vswitchd", mean(o!.cpu) + ovsPerCycle, mean(r!.cpu));
}

/** Concurrent ADDs on the warm node, then on a fresh node of each side. */
async function burstPart(node: SimNode, sides: Sides, dir: string): Promise<void> {
  const t = new Table(say, "ms (bursts)");
  t.head();
  const co = await burst(node, ours, sides[0]!.conflist, CONCURRENT, "bco");
  const cr = await burst(node, ref, sides[1]!.conflist, CONCURRENT, "bcr");
  t.row(`${CONCURRENT} concurrent ADDs, total`, co.ms, cr.ms, 1.0);
  const fresh = await Promise.all([createNode({ name: "bfo", underlayIP: "198.18.9.4" }), createNode({ name: "bfr", underlayIP: "198.18.9.5" })]);
  const fo = await burst(fresh[0]!, ours, ours.conflist(fresh[0]!, join(dir, "fo")), FRESH, "bfo");
  const fr = await burst(fresh[1]!, ref, ref.conflist(fresh[1]!, join(dir, "fr")), FRESH, "bfr");
  t.row(`${FRESH} concurrent ADDs, fresh node, total`, fo.ms, fr.ms);
  if (fo.failed + fr.failed + co.failed + cr.failed) say(`  failed ADDs: ovsplane ${co.failed} + ${fo.failed} fresh, reference ${cr.failed} + ${fr.failed} fresh`);
  else say("  every concurrent ADD succeeded (ovsplane and reference, warm and fresh node)");
}

/** VERSION round trips, interleaved with host-local's, an empty process's and an empty Bun executable's. */
function versionPart(dir: string): void {
  const bunFloor = emptyBunExecutable(REPO_ROOT, dir);
  const [ov, hl, br, empty, bun] = versionRoundTrips([[OVSPLANE], [join(REF_DIR, "host-local")], [join(REF_DIR, "bridge")], ["/bin/true"], [bunFloor]], VERSION_RUNS);
  say("");
  const s = new Table(say, `ms (VERSION round trip, median of ${VERSION_RUNS})`, ["ovsplane", "host-local"]);
  s.head();
  s.row("VERSION round trip", ov!, hl!, 2.5);
  s.row("  net of an empty process (/bin/true)", ov! - empty!, hl! - empty!);
  s.row("  an empty Bun executable (the floor)", bun!, hl!);
  say(`  (interleaved runs; Debian bridge ${br!.toFixed(1)} ms, /bin/true ${empty!.toFixed(1)} ms)`);
}

/** ADD latency with 1,000 static peers against 1. */
async function peersPart(dir: string): Promise<void> {
  const p = await peerScaling(dir);
  say("");
  const q = new Table(say, `ms (ovsplane ADD, median of ${PEER_ADDS})`, ["1000 peers", "1 peer"]);
  q.head();
  q.row("ADD latency, 1,000 vs 1 static peer", p.many, p.one, 1.2);
  q.row("  the runtime's share (no-op plugin)", p.runtimeMany, p.runtimeOne);
  q.row("  net of the runtime's share", p.many - p.runtimeMany, p.one - p.runtimeOne);
  q.row("ADD latency, the 1,000 in a peersFile", p.inFile, p.one, 1.2);
  say(`  (the first ADD on the 1,000-peer node, which writes their flows, routes and fingerprint: ${p.first.toFixed(0)} ms)`);
}

async function main(): Promise<void> {
  teardownOnSignals();
  const dir = tempDir();
  try {
    say(`ovsplane benchmark through libcni (dist/test/cnidriver): ovsplane (Bun-compiled dist/bin/ovsplane, OVS userspace datapath,`);
    say(`in-process ovsplane-ipam) vs Debian's containernetworking-plugins bridge + host-local (Go), on simulated nodes, same run.\n`);
    const node = await createNode({ name: "bench", underlayIP: "198.18.9.1" });
    const sides = await Promise.all([ours, ref].map(async (side) => ({ side, conflist: side.conflist(node, join(dir, side.label)), pod: await createPod(`bench-${side.label}`) })));
    if (PARTS.has("cycles")) await cyclePart(node, sides);
    if (PARTS.has("burst")) await burstPart(node, sides, dir);
    if (PARTS.has("version")) versionPart(dir);
    if (PARTS.has("peers")) await peersPart(dir);
  } finally {
    await teardownAll();
    rmTemp(dir);
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
