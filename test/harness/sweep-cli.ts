// CLI: removes what crashed test runs left behind (`tsx test/harness/sweep-cli.ts [--force] [--quiet]`).
import { sweepLeftovers } from "./netns.ts";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const removed = await sweepLeftovers({ force: argv.includes("--force") });
  if (removed.length && !argv.includes("--quiet")) console.log(`swept leftover namespaces: ${removed.join(" ")}`);
}

main().catch((e: unknown) => {
  console.error(`sweep: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
