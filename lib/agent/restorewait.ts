// other_config:flow-restore-wait: kept true while the agent runs, so a restarted ovs-vswitchd forwards nothing until the agent has replayed its flows.
import { connect, waitForCurCfg, type OvsdbClient } from "../ovs/ovsdb.ts";

const KEY = "flow-restore-wait";

/**
 * Sets (or, with undefined, removes) `Open_vSwitch other_config:flow-restore-wait`. With waitMs, bumps
 * next_cfg and resolves once ovs-vswitchd has applied it (it reads the key in the same loop).
 */
export async function setFlowRestoreWait(c: OvsdbClient, value: boolean | undefined, waitMs?: number): Promise<void> {
  const mutations: unknown[] = [["other_config", "delete", ["set", [KEY]]]];
  if (value !== undefined) mutations.push(["other_config", "insert", ["map", [[KEY, String(value)]]]]);
  const ops: unknown[] = [{ op: "mutate", table: "Open_vSwitch", where: [], mutations }];
  if (waitMs !== undefined) {
    ops.push({ op: "mutate", table: "Open_vSwitch", where: [], mutations: [["next_cfg", "+=", 1]] });
    ops.push({ op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] });
  }
  const res = await c.transact(ops as never);
  if (waitMs !== undefined) await waitForCurCfg(c, Number(res[res.length - 1].rows[0].next_cfg), waitMs);
}

/**
 * After the agent's flows are on the bridge: false, waited until ovs-vswitchd applied it (a switch that
 * started waiting now forwards; a running one stopped reading the key when it first saw false), then true
 * again for the next restart. Two steps, so ovs-vswitchd never sees only the final true.
 */
export async function releaseFlowRestoreWait(c: OvsdbClient, timeoutMs = 5000): Promise<void> {
  await setFlowRestoreWait(c, false, timeoutMs);
  await setFlowRestoreWait(c, true);
}

/** On the agent's exit: the key removed, so an ovs-vswitchd restarted while no agent runs does not wait for one. */
export async function clearFlowRestoreWait(ovsdbSocket: string, timeoutMs = 2000): Promise<void> {
  const c = await connect(ovsdbSocket, { timeoutMs });
  try {
    await setFlowRestoreWait(c, undefined);
  } finally {
    c.close();
  }
}
