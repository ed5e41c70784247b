// make bench: the VERSION round trip of the executables, interleaved runs, against an empty process and an empty Bun executable.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { median } from "./stats.ts";

/** Median VERSION round trip (ms) of each argv, runs interleaved (one of each in turn) so drift hits all alike. */
export function versionRoundTrips(argvs: readonly (readonly string[])[], runs: number): number[] {
  const times: number[][] = argvs.map(() => []);
  const env = { ...process.env, CNI_COMMAND: "VERSION" };
  for (let i = 0; i < runs + 5; i++) {
    argvs.forEach((argv, j) => {
      const t0 = performance.now();
      const r = spawnSync(argv[0]!, argv.slice(1), { env, input: "{}", encoding: "utf8" });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${argv.join(" ")} VERSION failed: ${r.stderr}`);
      if (i >= 5) times[j]!.push(ms); // 5 warm-up rounds (page cache)
    });
  }
  return times.map(median);
}

/**
 * An executable compiled by the same Bun, with the same flags, from a one-line program that prints the
 * VERSION answer: the floor of any Bun executable's start-up on this machine (its runtime, no code of ours).
 */
export function emptyBunExecutable(repo: string, dir: string): string {
  const src = join(dir, "empty.ts");
  const out = join(dir, "empty-bun");
  // write(2) on fd 1, as ovsplane writes: Bun's process.stdout alone costs ~11 ms to create.
  writeFileSync(src, 'import { writeSync } from "node:fs";\nwriteSync(1, \'{"cniVersion":"1.1.0"}\\n\');\n');
  const r = spawnSync(join(repo, "node_modules/.bin/bun"), ["build", "--compile", "--minify", "--bytecode", "--format=esm",
    "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", src, "--outfile", out], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`building the empty Bun executable: ${r.stderr}`);
  return out;
}
