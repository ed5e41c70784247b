// The ovsplane plugin: its commands, for the shared dispatcher; each verb's module is loaded only when it runs.
import type { CniRequest, Plugin } from "../cni/types.ts";

/** CNI_ARGS keys ovsplane understands (host-local's IP is passed on to the IPAM delegate). */
export const OVSPLANE_ARGS = ["OVSPLANE_SEGMENT", "IP"] as const;

/**
 * ovsplane's commands. VERSION loads none of them; ADD loads the ADD path only (the OVS clients, the
 * builders, the host edges), never DEL's or GC's.
 */
export const ovsplanePlugin: Plugin = {
  add: async (req: CniRequest) => (await import("./add.ts")).add(req),
  del: async (req: CniRequest) => (await import("./del.ts")).del(req),
  check: async (req: CniRequest) => (await import("./check.ts")).check(req),
  gc: async (req: CniRequest) => (await import("./gc.ts")).gc(req),
  status: async (req: CniRequest) => (await import("./check.ts")).status(req),
};
