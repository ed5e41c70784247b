// ovsplanectl idle: wait until terminated (the DaemonSet's main container until ovsplane-agent runs there).
import type { CommandModule } from "yargs";

/** Waits until SIGTERM or SIGINT, then exits 0. */
function idle(): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => undefined, 1 << 30);
    const stop = () => {
      clearInterval(timer);
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
}

/** The `idle` command. */
export const idleCommand: CommandModule = {
  command: "idle",
  describe: "wait until terminated (the DaemonSet's placeholder until ovsplane-agent)",
  handler: () => idle(),
};
