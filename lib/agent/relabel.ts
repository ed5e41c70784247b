// Relabel: moves this node's running pods to their namespace's current segment (port tags, pod flows, segment flows) under the node lock.
import { Tag } from "../dataplane/attachment.ts";
import { podFlows, segmentFlows, type NodePorts } from "../dataplane/builders.ts";
import { attachmentId, gatewayMac } from "../dataplane/names.ts";
import { EXACT_MASK, podCookie, segmentCookie } from "../dataplane/pipeline.ts";
import { ipv4Of } from "../dataplane/attachment.ts";
import type { FlowOp } from "../ovs/flow.ts";
import { findPort, listPorts, setPortTags, type TaggedPort } from "../node/bridge.ts";
import { withLock } from "../node/lock.ts";
import type { OvsConnections } from "./conns.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";

/** One pod to move: its port (with its attachment) and its old and new segment. */
export interface Move {
  port: TaggedPort & { attachment: NonNullable<TaggedPort["attachment"]> };
  from: number;
  to: number;
}

/** The pods of the network whose namespace now maps to another segment than their port's tag says; pinned segments (OVSPLANE_SEGMENT) stay (pure). */
export function relabelMoves(ports: readonly TaggedPort[], network: string, segments: Readonly<Record<string, number>>): Move[] {
  const out: Move[] = [];
  for (const p of ports) {
    const a = p.attachment;
    if (!a || a.network !== network || !a.podNamespace || a.segmentPinned) continue;
    const to = segments[a.podNamespace];
    if (to === undefined || to === a.segment) continue;
    out.push({ port: { ...p, attachment: a }, from: a.segment, to });
  }
  return out;
}

/**
 * The one bundle of a relabel (pure): per moved pod its cookie's flows deleted and the builders' flows
 * for the new segment added, the new segments' flows added, and each old segment's flow deleted when no
 * port of any network (`ports`: all of the bridge's, as they were before the move) uses it any more.
 */
export function relabelFlowOps(moves: readonly (Move & { ofport: number })[], ports: readonly TaggedPort[], node: Pick<NodePorts, "gateway" | "gatewayMAC">): FlowOp[] {
  const ops: FlowOp[] = [];
  const moved = new Map(moves.map((m) => [m.port.uuid, m.to]));
  for (const m of moves) {
    const a = m.port.attachment;
    const id = attachmentId(a.network, a.containerID, a.ifname);
    ops.push({ op: "delete", cookie: podCookie(id), mask: EXACT_MASK });
    const ip = ipv4Of(a);
    if (ip) for (const flow of podFlows({ id, port: m.ofport, ip, mac: a.mac, segment: m.to }, node)) ops.push({ op: "add", flow });
  }
  for (const seg of new Set(moves.map((m) => m.to))) for (const flow of segmentFlows(seg)) ops.push({ op: "add", flow });
  const used = new Set(ports.flatMap((p) => (p.attachment ? [moved.get(p.uuid) ?? p.attachment.segment] : [])));
  for (const seg of new Set(moves.map((m) => m.from))) if (!used.has(seg)) ops.push({ op: "delete", cookie: segmentCookie(seg), mask: EXACT_MASK });
  return ops;
}

/** What one relabel pass did. */
export interface RelabelOutcome {
  /** Pods moved to their namespace's new segment. */
  moved: Move[];
  /** Pods to move whose flows are not on the bridge yet (an ADD in flight writes them): left for a later pass. */
  deferred: number;
}

/**
 * Moves every pod of the network whose namespace maps to another segment: under the node lock (so a
 * concurrent ADD or DEL never undoes it), its port's and interface's segment tag, then one bundle with
 * its new flows, the new segment's flow and the removal of an old segment's flow nobody uses. A pod whose
 * flows are not written yet (its ADD holds on for the lock) is left for the next pass.
 */
export async function relabelPods(cfg: OvsplaneConfig, segments: Readonly<Record<string, number>>, gatewayOfport: number, conns: OvsConnections): Promise<RelabelOutcome> {
  const c = await conns.ovsdb(cfg.ovsdbSocket);
  // A cheap look first (no lock) for the common case of nothing to move.
  if (!relabelMoves(await listPorts(c, cfg.name), cfg.name, segments).length) return { moved: [], deferred: 0 };
  return await withLock(c, cfg.bridge, async () => {
    const ports = await listPorts(c);
    const moves = relabelMoves(ports, cfg.name, segments);
    return conns.sw.use(cfg.ofSocket, async (sw) => {
      const ready: (Move & { ofport: number })[] = [];
      for (const m of moves) {
        const a = m.port.attachment;
        const [flows, port] = await Promise.all([
          sw.read([{ cookie: podCookie(attachmentId(a.network, a.containerID, a.ifname)), mask: EXACT_MASK }]),
          findPort(c, m.port.name),
        ]);
        if (flows.length && port?.ofport && port.ofport > 0) ready.push({ ...m, ofport: port.ofport });
      }
      for (const m of ready) await setPortTags(c, m.port.name, { [Tag.Segment]: String(m.to) });
      await sw.apply(relabelFlowOps(ready, ports, { gateway: gatewayOfport, gatewayMAC: gatewayMac(cfg.bridge) }));
      return { moved: ready, deferred: moves.length - ready.length };
    });
  });
}
