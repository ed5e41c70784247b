// The agent's pod GC decision (pure): which attachments lost their pod long enough ago, and the DEL request that removes one.
import type { CniRequest, NetConf } from "../cni/types.ts";
import type { Attachment } from "../dataplane/attachment.ts";

/** A pod as the node's pod informer lists it. */
export interface PodRef {
  namespace: string;
  name: string;
}

/** What one GC decision looks at. */
export interface GcInput {
  /** This node's attachments of the agent's network (from the ports' tags). */
  attachments: readonly Attachment[];
  /** The pods the API lists on this node (`spec.nodeName`). */
  pods: readonly PodRef[];
  /** The pod informer has listed and still answers: without it, nothing is collected and no clock starts. */
  synced: boolean;
  /** When each attachment (by gcKey) was first seen without its pod. */
  missingSince: ReadonlyMap<string, number>;
  now: number;
  /** How long an attachment stays without its pod before it is removed. */
  graceMs: number;
}

/** A GC decision: what to remove now, and the clocks to keep for the next round. */
export interface GcDecision {
  remove: Attachment[];
  missingSince: Map<string, number>;
}

/** The key of an attachment in the GC's clocks. */
export function gcKey(a: Pick<Attachment, "network" | "containerID" | "ifname">): string {
  return `${a.network}/${a.containerID}/${a.ifname}`;
}

/**
 * Decides which attachments to remove: only Kubernetes ones (pod namespace and name tagged), only once
 * the pod informer is synced, never one whose pod is listed, and only after it has been seen without its
 * pod for the whole grace period (which also covers an ADD whose Pod the informer has not delivered yet).
 * Clocks of attachments that are gone or whose pod is listed are dropped; while unsynced, clocks are
 * kept as they are and none starts.
 */
export function gcDecision(i: GcInput): GcDecision {
  if (!i.synced) return { remove: [], missingSince: new Map(i.missingSince) };
  const listed = new Set(i.pods.map((p) => `${p.namespace}/${p.name}`));
  const remove: Attachment[] = [];
  const missingSince = new Map<string, number>();
  for (const a of i.attachments) {
    if (!a.podNamespace || !a.podName) continue; // not a Kubernetes attachment: never ours to collect
    if (listed.has(`${a.podNamespace}/${a.podName}`)) continue;
    const key = gcKey(a);
    const since = i.missingSince.get(key) ?? i.now;
    if (i.now - since >= i.graceMs) remove.push(a);
    else missingSince.set(key, since);
  }
  return { remove, missingSince };
}

/**
 * The CNI DEL request that removes an attachment, built from the agent's conflist (its first ovsplane
 * plugin, with the conflist's name and cniVersion, as a runtime hands it) and the attachment's tags.
 */
export function gcDelRequest(conflist: Record<string, unknown>, a: Attachment, path: readonly string[]): CniRequest {
  const plugins = (Array.isArray(conflist.plugins) ? conflist.plugins : []) as Record<string, unknown>[];
  const plugin = plugins.find((p) => p?.type === "ovsplane");
  if (!plugin) throw new Error("the conflist has no plugin of type ovsplane");
  const conf = { ...plugin, name: conflist.name, cniVersion: conflist.cniVersion } as NetConf;
  const args: Record<string, string> = { IgnoreUnknown: "1" };
  if (a.podNamespace) args.K8S_POD_NAMESPACE = a.podNamespace;
  if (a.podName) args.K8S_POD_NAME = a.podName;
  return {
    command: "DEL",
    containerID: a.containerID,
    netns: a.netns,
    ifname: a.ifname,
    args,
    rawArgs: Object.entries(args).map(([k, v]) => `${k}=${v}`).join(";"),
    path: [...path],
    stdin: JSON.stringify(conf),
    conf,
  };
}
