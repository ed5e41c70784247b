// The agent's pod GC pass: this node's attachments against the pods the API lists here, removed through the plugin's own DEL.
import type { V1Pod } from "@kubernetes/client-node";
import { messageOf } from "../cni/errors.ts";
import type { Attachment } from "../dataplane/attachment.ts";
import { connect } from "../ovs/ovsdb.ts";
import { listPorts } from "../node/bridge.ts";
import { OVS_TIMEOUT_MS } from "../node/lock.ts";
import { del } from "../plugin/del.ts";
import { networkConfig } from "./model.ts";
import { gcDecision, gcDelRequest, type PodRef } from "./gc.ts";

/** Where the collector gets what it works from. */
export interface CollectorSource {
  /** The conflist the agent last wrote (undefined: not yet: nothing is collected). */
  conflist(): Record<string, unknown> | undefined;
  /** The pod informer's cache and whether it is synced and answering. */
  pods(): { synced: boolean; list: readonly V1Pod[] };
  graceMs: number;
  /** CNI_PATH for an IPAM plugin that is exec'd (ovsplane-ipam runs in-process). */
  cniPath: readonly string[];
  log(line: string): void;
}

/** Runs GC passes, keeping the clocks of attachments seen without their pod between passes. */
export class PodCollector {
  private missingSince = new Map<string, number>();

  constructor(private readonly src: CollectorSource) {}

  /** One pass: returns the attachments removed (a failed removal is logged and retried next pass). */
  async runOnce(now = Date.now()): Promise<Attachment[]> {
    const conflist = this.src.conflist();
    if (!conflist) return [];
    const cfg = networkConfig(conflist);
    const { synced, list } = this.src.pods();
    const c = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
    let attachments: Attachment[];
    try {
      attachments = (await listPorts(c, cfg.name)).flatMap((p) => (p.attachment ? [p.attachment] : []));
    } finally {
      c.close();
    }
    const pods: PodRef[] = list.flatMap((p) => (p.metadata?.name ? [{ namespace: p.metadata.namespace ?? "default", name: p.metadata.name }] : []));
    const d = gcDecision({ attachments, pods, synced, missingSince: this.missingSince, now, graceMs: this.src.graceMs });
    this.missingSince = d.missingSince;
    const removed: Attachment[] = [];
    for (const a of d.remove) {
      const what = `${a.podNamespace}/${a.podName} (${a.containerID}/${a.ifname}, ${a.ips.join(",")})`;
      try {
        await del(gcDelRequest(conflist, a, this.src.cniPath));
        removed.push(a);
        this.src.log(`GC: removed the attachment of pod ${what}: no such pod on this node`);
      } catch (e) {
        this.src.log(`GC: removing the attachment of pod ${what} failed (retried): ${messageOf(e)}`);
      }
    }
    return removed;
  }
}
