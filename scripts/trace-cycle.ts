// Dev aid: OVSPLANE_TRACE of warm ADD/DEL cycles through libcni on one simulated node (where an ADD's time goes).
// Env: CYCLES (4), PEERS (static peers, 1), SHOW=1 (every call's trace, not only the last), NOTRACE=1,
// WRAP=dir (a directory put first in CNI_PATH, e.g. with an `ovsplane` wrapper that runs perf stat).
import { createNode, createPod, runDriver, teardownAll, teardownOnSignals } from "../test/harness/testbed.ts";
import { BIN_DIR, netConf, REF_DIR, rmTemp, tempDir } from "../test/integration/common.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
const PEERS = Number(process.env.PEERS ?? 1);
const peers = Array.from({ length: PEERS }, (_, i) => ({ nodeIP: `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`, podCIDR: `10.${(i >> 8) + 1}.${i & 255}.0/24` }));
async function main() {
  teardownOnSignals();
  const dir = tempDir();
  try {
    const node = await createNode({ name: "tr", underlayIP: "198.18.9.7" });
    const conflist = { file: join(dir, "net.conflist") };
    writeFileSync(conflist.file, JSON.stringify({ cniVersion: "1.0.0", name: "podnet", plugins: [{ ...netConf(node, { podCIDR: "10.244.0.0/22", peers, dataDir: join(dir, "d"), extra: { mtu: 1450, clusterCIDR: "10.0.0.0/8" } }), cniVersion: undefined, name: undefined }] }));
    const pod = await createPod("trpod");
    for (let i = 0; i < Number(process.env.CYCLES ?? 4); i++) {
      for (const command of ["add", "del"] as const) {
        const t0 = performance.now();
        const r = await runDriver({ node, command, conflist, containerID: `c${i}`, netns: pod, path: process.env.WRAP ? [process.env.WRAP, BIN_DIR, REF_DIR] : [BIN_DIR, REF_DIR], env: process.env.NOTRACE ? {} : { OVSPLANE_TRACE: "1" }, timeoutMs: 120_000 });
        const ms = performance.now() - t0;
        console.log(`== ${command} ${i}: ${ms.toFixed(1)} ms code ${r.code}`);
        if (process.env.SHOW || i === Number(process.env.CYCLES ?? 4) - 1) console.log(r.stderr);
      }
    }
  } finally { await teardownAll(); rmTemp(dir); }
}
main();
