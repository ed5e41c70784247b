// The node lock: an OVSDB lock per bridge, released with the connection, so a crash cannot leave it held.
import type { OvsdbClient } from "../ovs/ovsdb.ts";

/** How long a command waits for OVSDB and ovs-vswitchd before answering "try again later". */
export const OVS_TIMEOUT_MS = 3000;

/** How long a command waits for the node lock. */
export const LOCK_TIMEOUT_MS = 10_000;

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
