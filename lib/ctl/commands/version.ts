// ovsplanectl version: print the version.
import type { CommandModule } from "yargs";

/** The version every ovsplane executable reports. */
export const VERSION = "0.1.0";

/** The `version` command. */
export const versionCommand: CommandModule = {
  command: "version",
  describe: "print the version",
  handler: () => console.log(`ovsplane ${VERSION}`),
};
