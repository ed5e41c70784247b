// make bench: ovsplane vs Debian's bridge + host-local through libcni; cycle, concurrency, start-up, memory.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { createNode, createPod, runDriver, teardownAll, teardownOnSignals, type SimNode, type SimPod } from "../test/harness/testbed.ts";
import { BIN_DIR, netConf, OVSPLANE, REF_DIR, rmTemp, tempDir } from "../test/integration/common.ts";

const CYCLES = Number(process.env.BENCH_CYCLES ?? 30);
const CONCURRENT = 20;
const say = (s = "") => process.stdout.write(`${s}\n`);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Figures { median: number; p90: number; concurrent: number }

async function measure(node: SimNode, conflist: object, path: string[], label: string): Promise<Figures> {
  const pod = await createPod(`bench-${label}`);
  const times: number[] = [];
  for (let i = 0; i < CYCLES + 3; i++) {
    const t0 = performance.now();
    const a = await runDriver({ node, command: "add", conflist, containerID: `b-${label}-${i}`, netns: pod, path });
    if (a.code !== 0) throw new Error(`${label} ADD: ${a.stderr}`);
    const d = await runDriver({ node, command: "del", conflist, containerID: `b-${label}-${i}`, netns: pod, path });
    if (d.code !== 0) throw new Error(`${label} DEL: ${d.stderr}`);
    if (i >= 3) times.push(performance.now() - t0); // 3 warm-up cycles
  }
  const pods: SimPod[] = [];
  for (let i = 0; i < CONCURRENT; i++) pods.push(await createPod(`bc-${label}-${i}`));
  const t0 = performance.now();
  const adds = await Promise.all(pods.map((p, i) => runDriver({ node, command: "add", conflist, containerID: `c-${label}-${i}`, netns: p, path, timeoutMs: 120_000 })));
  const concurrent = performance.now() - t0;
  if (adds.some((r) => r.code !== 0)) throw new Error(`${label} concurrent ADD: ${adds.find((r) => r.code !== 0)!.stderr}`);
  await Promise.all(pods.map((p, i) => runDriver({ node, command: "del", conflist, containerID: `c-${label}-${i}`, netns: p, path })));
  return { median: pct(times, 50), p90: pct(times, 90), concurrent };
}

function startup(argv: string[]): { median: number; rssKiB: number } {
  const times: number[] = [];
  let rss = 0;
  for (let i = 0; i < 23; i++) {
    const t0 = performance.now();
    const r = spawnSync("/usr/bin/time", ["-f", "%M", ...argv], { env: { ...process.env, CNI_COMMAND: "VERSION" }, input: "{}", encoding: "utf8" });
    if (i >= 3) times.push(performance.now() - t0);
    rss = Math.max(rss, Number(r.stderr.trim().split("\n").pop()) || 0);
  }
  return { median: pct(times, 50), rssKiB: rss };
}

async function main(): Promise<void> {
  teardownOnSignals();
  const dir = tempDir();
  try {
    const node = await createNode({ name: "bench", underlayIP: "198.18.9.1" });
    const ours = { cniVersion: "1.0.0", name: "podnet", plugins: [{ ...netConf(node, { podCIDR: "10.244.1.0/24", dataDir: dir, extra: { mtu: 1450 } }), cniVersion: undefined, name: undefined }] };
    const ref = {
      cniVersion: "1.0.0", name: "refnet",
      plugins: [{ type: "bridge", bridge: "cni-bench0", isGateway: true, ipMasq: false, ipam: { type: "host-local", ranges: [[{ subnet: "10.99.0.0/24" }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: dir } }],
    };
    say(`ovsplane benchmark (${CYCLES} ADD+DEL cycles after 3 warm-up, ${CONCURRENT} concurrent ADDs), through libcni (dist/test/cnidriver)`);
    say("ovsplane: Bun-compiled dist/bin/ovsplane, OVS userspace datapath, in-process ovsplane-ipam");
    say("reference: Debian containernetworking-plugins bridge + host-local (Go)\n");
    const o = await measure(node, ours, [BIN_DIR, REF_DIR], "ovs");
    const r = await measure(node, ref, [REF_DIR], "ref");
    const row = (name: string, a: number, b: number) => say(`${name.padEnd(28)} ${a.toFixed(1).padStart(10)} ${b.toFixed(1).padStart(12)} ${(a / b).toFixed(2).padStart(8)}`);
    say(`${"ms".padEnd(28)} ${"ovsplane".padStart(10)} ${"bridge+h-l".padStart(12)} ${"ratio".padStart(8)}`);
    row("ADD+DEL cycle, median", o.median, r.median);
    row("ADD+DEL cycle, p90", o.p90, r.p90);
    row(`${CONCURRENT} concurrent ADDs, total`, o.concurrent, r.concurrent);
    say("\nStart-up (VERSION round trip, median of 20) and peak RSS:");
    const rows: [string, string[]][] = [
      ["dist/bin/ovsplane (Bun)", [OVSPLANE]],
      ["node dist/js/ovsplane.cjs", ["node", join(BIN_DIR, "../js/ovsplane.cjs")]],
      ["Debian host-local (Go)", [join(REF_DIR, "host-local")]],
      ["Debian bridge (Go)", [join(REF_DIR, "bridge")]],
    ];
    for (const [name, argv] of rows) {
      const s = startup(argv);
      say(`  ${name.padEnd(28)} ${s.median.toFixed(1).padStart(7)} ms  ${String(Math.round(s.rssKiB / 1024)).padStart(4)} MiB`);
    }
  } finally {
    await teardownAll();
    rmTemp(dir);
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
