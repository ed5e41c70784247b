// ovsplanectl commands (yargs): ports, flows, leases, status.
/** Runs the CLI with the given arguments. */
export async function main(argv: string[]): Promise<void> {
  const { default: yargs } = await import("yargs");
  await yargs(argv)
    .scriptName("ovsplanectl")
    .command("version", "print the version", {}, () => console.log("ovsplane 0.1.0"))
    .demandCommand(1)
    .strict()
    .help()
    .parseAsync();
}
