// Static mode's node-wide flows on ADD: trusted by their fingerprint on the bridge, read back and diffed only when it changed.
import { trace } from "../host/exec.ts";
import type { OvsdbClient } from "../ovs/ovsdb.ts";
import type { Switch } from "../node/flows.ts";
import { setBridgeId } from "../node/bridge.ts";
import type { PodFlowSpec } from "../dataplane/builders.ts";
import { defaultsHold, networkFlowsFingerprint, networkScope, type NodeModel } from "../dataplane/model.ts";
import { EXACT_MASK, NODE_COOKIE } from "../dataplane/pipeline.ts";
import type { OvsplaneConfig } from "./config.ts";
import { addFlowOps, podAddOps } from "./plan.ts";

/** The bridge external_id that records the fingerprint a network's node-wide flows were last reconciled with. */
export function flowsKey(network: string): string {
  return `ovsplane-flows-${network}`;
}

/** Options of applyStaticFlows. */
export interface StaticFlowsSpec {
  client: OvsdbClient;
  sw: Switch;
  cfg: OvsplaneConfig;
  model: NodeModel;
  pod: PodFlowSpec;
  /** The bridge's external_ids, read under the node lock. */
  ids: Readonly<Record<string, string>>;
}

/**
 * Writes a static ADD's flows as one bundle. When the fingerprint recorded on the bridge is the model's
 * and the pipeline defaults are still on the bridge (counted by the switch: a flush or an ovs-vswitchd restart takes them), the
 * network's node-wide flows are trusted: only the pod's flows and its segment's are written, whatever the
 * number of peers. Else the network's node-wide flows are read back, only their differences written with
 * the pod's, and the fingerprint recorded once the bundle is in. Callers hold the node lock.
 */
export async function applyStaticFlows(s: StaticFlowsSpec): Promise<void> {
  const { cfg, model, sw } = s;
  const fingerprint = networkFlowsFingerprint(model, cfg.name);
  if (s.ids[flowsKey(cfg.name)] === fingerprint) {
    if (defaultsHold(model.ports, await sw.count([{ cookie: NODE_COOKIE, mask: EXACT_MASK }]))) {
      trace(`node-wide flows of ${cfg.name} hold (fingerprint ${fingerprint})`);
      return sw.apply(podAddOps(s.pod, model.ports));
    }
    trace("pipeline defaults gone: node-wide flows read back");
  }
  await sw.apply(addFlowOps({ cfg, model, current: await sw.read(networkScope(cfg.name)), pod: s.pod }));
  await setBridgeId(s.client, cfg.bridge, flowsKey(cfg.name), fingerprint);
  trace(`node-wide flows of ${cfg.name} reconciled (fingerprint ${fingerprint})`);
}
