// Process-wide settings from OVSPLANE_* variables, read once by the entry (cmd/*) and set here with configure().

/** ovsplane's own switches (not the CNI_* request variables, which the dispatcher reads per command). */
export interface Settings {
  /** OVSPLANE_TRACE: log every subprocess and traced step with its time to stderr. */
  trace: boolean;
  /** OVSPLANE_DEBUG: on an error, print its stack and cause chain to stderr. */
  debug: boolean;
  /** OVSPLANE_OFCTL=1: apply flows with `ovs-ofctl bundle` instead of the built-in OpenFlow client. */
  ofctl: boolean;
  /** OVSPLANE_IPAM_EXEC=1: exec ovsplane-ipam from CNI_PATH instead of running it in-process. */
  ipamExec: boolean;
  /** OVSPLANE_IP_EXEC=1: kernel links through `ip` subprocesses instead of netlink in the Bun executable. */
  ipExec: boolean;
}

/** Every switch off: what a library user (or a test) gets without configure(). */
export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({ trace: false, debug: false, ofctl: false, ipamExec: false, ipExec: false });

/** Reads the settings from an environment (non-empty TRACE/DEBUG, "1" for OFCTL and IPAM_EXEC, as before). */
export function settingsFromEnv(env: Record<string, string | undefined>): Settings {
  return {
    trace: !!env.OVSPLANE_TRACE,
    debug: !!env.OVSPLANE_DEBUG,
    ofctl: env.OVSPLANE_OFCTL === "1",
    ipamExec: env.OVSPLANE_IPAM_EXEC === "1",
    ipExec: env.OVSPLANE_IP_EXEC === "1",
  };
}

const current: Settings = { ...DEFAULT_SETTINGS };

/** The settings in force; read them where used (not at module load), so configure() reaches every reader. */
export const settings: Readonly<Settings> = current;

/** Sets the settings (the entry calls it once with settingsFromEnv(process.env); tests may set single fields). */
export function configure(next: Partial<Settings>): void {
  Object.assign(current, next);
}
