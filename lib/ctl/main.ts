// ovsplanectl (yargs): one command module per subcommand under lib/ctl/commands/.
import { idleCommand } from "./commands/idle.ts";
import { flowsCommand } from "./commands/flows.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { gcCommand } from "./commands/gc.ts";
import { installCommand } from "./commands/install.ts";
import { leasesCommand } from "./commands/leases.ts";
import { logCommand } from "./commands/log.ts";
import { podsCommand } from "./commands/pods.ts";
import { policiesCommand } from "./commands/policies.ts";
import { statusCommand } from "./commands/status.ts";
import { traceCommand } from "./commands/trace.ts";
import { versionCommand } from "./commands/version.ts";

export { applyNodeFacts, conflistFromFlags } from "./commands/install.ts";

/** Runs the CLI with the given arguments. */
export async function main(argv: string[]): Promise<void> {
  const { default: yargs } = await import("yargs");
  await yargs(argv)
    .scriptName("ovsplanectl")
    .usage("$0 <command> [options]")
    .command(installCommand)
    .command(versionCommand)
    .command(idleCommand)
    .command(logCommand)
    .command(doctorCommand)
    .command(gcCommand)
    .command(statusCommand)
    .command(podsCommand)
    .command(policiesCommand)
    .command(leasesCommand)
    .command(flowsCommand)
    .command(traceCommand)
    .demandCommand(1, "give a command")
    .strict()
    .help()
    .fail((msg, err) => {
      process.stderr.write(`ovsplanectl: ${err?.message ?? msg}\n(see ovsplanectl --help)\n`);
      process.exitCode = 1;
    })
    .parseAsync();
}
