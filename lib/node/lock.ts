// The node lock: an OVSDB lock per bridge, released with the connection, so a crash cannot leave it held.
import type { OvsdbClient } from "../ovs/ovsdb.ts";

/** How long a command waits for OVSDB and ovs-vswitchd before answering "try again later". */
export const OVS_TIMEOUT_MS = 3000;

/**
 * How long a command waits for a busy ovs-vswitchd before answering "try again later": while a burst of
 * port changes keeps its main loop reconfiguring, it accepts no connection on the bridge's socket and
 * applies the next port late (tens of seconds with 200 calls on two busy cores). A stopped one is told
 * apart no sooner (its socket may be left behind).
 */
export const SWITCH_WAIT_MS = 60_000;

/**
 * How long a command waits for the node lock. OVSDB grants it in request order, so a burst of CNI calls
 * (200 at once on two cores take ~20 s to get through it) waits its turn rather than failing; the
 * runtime's own deadline (kubelet's runtime request timeout, 2 min by default) stays the outer bound.
 */
export const LOCK_TIMEOUT_MS = 60_000;

/** Runs fn while holding the bridge's OVSDB lock (serializes segment-flow changes between processes). */
export async function withLock<T>(client: OvsdbClient, bridge: string, fn: () => Promise<T>): Promise<T> {
  const name = `ovsplane_${bridge.replace(/[^a-zA-Z0-9_]/g, "_")}`;
  await client.lock(name, LOCK_TIMEOUT_MS);
  try {
    return await fn();
  } finally {
    // A lock that could not be released goes with its connection (a long-lived one would keep it forever).
    await client.unlock(name).catch(() => client.close());
  }
}
