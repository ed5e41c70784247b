// The ovsplane plugin: its commands, for the shared dispatcher.
import type { Plugin } from "../cni/types.ts";
import { add } from "./add.ts";
import { check, status } from "./check.ts";
import { del } from "./del.ts";
import { gc } from "./gc.ts";

/** CNI_ARGS keys ovsplane understands (host-local's IP is passed on to the IPAM delegate). */
export const OVSPLANE_ARGS = ["OVSPLANE_SEGMENT", "IP"] as const;

/** ovsplane's commands. */
export const ovsplanePlugin: Plugin = { add, del, check, gc, status };
