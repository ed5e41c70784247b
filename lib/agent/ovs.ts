// The agent's OVS reconcile: bridge and shared ports, node-wide flows, pods' flows replayed, host state, in one pass.
import { nodeFlows, podFlows, segmentFlows, type PeerFlowSpec } from "../dataplane/builders.ts";
import { diffFlows, desiredNodeFlows, NODE_SCOPE, type CookieFilter } from "../dataplane/model.ts";
import { CookieKind, cookie, EXACT_MASK, KIND_MASK, NODE_COOKIE } from "../dataplane/pipeline.ts";
import type { HostSpec } from "../dataplane/hoststate.ts";
import { flowKey, type Flow, type FlowOp } from "../ovs/flow.ts";
import { connect, setToArray, type OvsdbClient } from "../ovs/ovsdb.ts";
import { bridgeIds, ensureNode, listPorts } from "../node/bridge.ts";
import { readFlows, withSwitch } from "../node/flows.ts";
import { applyHostState, isApplied } from "../node/host.ts";
import { OVS_TIMEOUT_MS, withLock } from "../node/lock.ts";
import { nodeSpec } from "../plugin/plan.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";
import { agentHostSpec, agentNodeModel, podFlowSpecs, type NodeFacts, type PodPort } from "./model.ts";

/** What one OVS reconcile works from. */
export interface OvsInput {
  cfg: OvsplaneConfig;
  self: NodeFacts;
  peers: readonly PeerFlowSpec[];
}

/** What one OVS reconcile did. */
export interface OvsOutcome {
  ofports: { tunnel: number; gateway: number };
  /** Node-wide flow changes written (adds and deletes). */
  nodeChanges: number;
  /** Pods' and segments' flows written back (missing or different). */
  podReplays: number;
  /** Pod ports of the network found. */
  pods: number;
  /** Host state was (re)applied. */
  hostApplied: boolean;
}

/** The pods' and segments' cookies, read back to replay what is missing. */
const POD_SCOPE: readonly CookieFilter[] = [CookieKind.Pod, CookieKind.Segment].map((k) => ({ cookie: cookie(k, 0n), mask: KIND_MASK }));

/** Pod ports of the network with their OpenFlow numbers (two selects, one round trip each). */
async function podPorts(c: OvsdbClient, network: string): Promise<PodPort[]> {
  const ports = await listPorts(c, network);
  const [ifs] = await c.transact([{ op: "select", table: "Interface", where: [], columns: ["name", "ofport"] }]);
  const ofport = new Map<string, number>(
    ifs.rows.map((r: { name: string; ofport: unknown }) => [r.name, Number(setToArray(r.ofport)[0] ?? -1)]),
  );
  return ports.flatMap((p) => (p.attachment ? [{ attachment: p.attachment, ofport: ofport.get(p.name) ?? -1 }] : []));
}

/**
 * The pod flow changes: every pod's flows and its segment's flow the builders make, written where
 * missing or different. Only cookies of known pods and used segments are compared: a pod's DEL (or
 * GC) removes its own flows, and a segment's flow is the plugin's to remove when its last pod leaves.
 */
export function podFlowOps(current: readonly Flow[], desired: readonly Flow[]): FlowOp[] {
  const wanted = new Set(desired.map((f) => f.cookie));
  return diffFlows(current.filter((f) => wanted.has(f.cookie)), desired);
}

/**
 * One reconcile of the node's OVS state: ensure the bridge and shared ports, then under the node lock
 * read the node-wide, pod and segment flows back and write the differences as one bundle, and apply
 * the host state when its fingerprint (or the kernel's marker route) says it changed.
 */
export async function reconcileOvs(input: OvsInput): Promise<OvsOutcome> {
  const { cfg, self, peers } = input;
  const c = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
  try {
    const ofports = await ensureNode(c, nodeSpec(cfg, self.address!), undefined, OVS_TIMEOUT_MS);
    const model = agentNodeModel(cfg, ofports, self, peers);
    const pods = podFlowSpecs(cfg.name, await podPorts(c, cfg.name));
    const wantPods = pods.flatMap((p) => [...podFlows(p, model.ports), ...segmentFlows(p.segment)]);
    const spec: HostSpec = agentHostSpec(cfg, self, peers);
    return await withLock(c, cfg.bridge, async () => {
      const { nodeOps, podOps } = await withSwitch(cfg.ofSocket, async (sw) => {
        const [node, pod] = await Promise.all([sw.read(NODE_SCOPE), sw.read(POD_SCOPE)]);
        const nodeOps = diffFlows(node, desiredNodeFlows(model));
        const podOps = podFlowOps(pod, dedupe(wantPods));
        await sw.apply([...nodeOps, ...podOps]);
        return { nodeOps, podOps };
      });
      let hostApplied = false;
      if (!isApplied(spec, await bridgeIds(c, cfg.bridge))) {
        await applyHostState(c, cfg.bridge, spec);
        hostApplied = true;
      }
      return { ofports, nodeChanges: nodeOps.length, podReplays: podOps.filter((o) => o.op === "add").length, pods: pods.length, hostApplied };
    });
  } finally {
    c.close();
  }
}

/** Flows without repeats (a segment's flow is wanted once per pod in it). */
function dedupe(flows: readonly Flow[]): Flow[] {
  return [...new Map(flows.map((f) => [flowKey(f), f])).values()];
}

/**
 * The cheap periodic check: true when every pipeline default is on the bridge (one dump of the Node
 * cookie). A flush or an ovs-vswitchd restart takes them with everything else, so their absence calls
 * for a full reconcile.
 */
export async function nodeFlowsPresent(ofSocket: string, ports: { tunnel: number; gateway: number; gatewayMAC: string }): Promise<boolean> {
  const have = await readFlows(ofSocket, [{ cookie: NODE_COOKIE, mask: EXACT_MASK }]);
  return have.length >= nodeFlows(ports).length;
}
