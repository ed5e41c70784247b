// DEL: remove an attachment's flows, port, veth and lease; succeed when they are already gone.
import { CniError, Code, messageOf, tryAgainLater } from "../cni/errors.ts";
import { trace } from "../host/exec.ts";
import { links } from "../host/links.ts";
import { connect, type OvsdbClient } from "../ovs/ovsdb.ts";
import type { FlowOp } from "../ovs/flow.ts";
import { applyFlows } from "../node/flows.ts";
import { cookie, CookieKind, EXACT_MASK, NETWORK_KIND_MASK, podCookie, segmentCookie } from "../dataplane/pipeline.ts";
import { hostKey, removeHostState } from "../node/host.ts";
import type { CniRequest } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "./config.ts";
import { delegateIpam } from "./delegate.ts";
import { attachmentId, hostVethName, networkId } from "../dataplane/names.ts";
import { bridgeIds, deletePorts, listPorts, setBridgeId, type TaggedPort } from "../node/bridge.ts";
import { flowsKey } from "./staticflows.ts";
import { OVS_TIMEOUT_MS, withLock } from "../node/lock.ts";
import { calls } from "./calllog.ts";

/** Deletes a host veth (and so its pod end); a missing one is fine. */
export async function deleteVeth(name: string): Promise<void> {
  await (await links()).deleteLink(name);
}

/**
 * Removes ports of this network and their pods' flows, and the flow of every segment they leave
 * empty (told by the remaining ports' tags of every network; no flow dump). The ports are given, or
 * picked from that listing (DEL: no round trip of its own to find its port). With `network` (GC), when
 * no pod of the network is left on the node its network flows and host state go too (and the raw
 * guard with the node's last ovsplane pod); DEL leaves them for the node's own traffic and the next pod.
 * Runs under the node lock so a concurrent ADD cannot lose what it needs.
 */
export async function removeAttachments(
  client: OvsdbClient,
  cfg: OvsplaneConfig,
  which: readonly TaggedPort[] | ((ports: readonly TaggedPort[]) => TaggedPort[]),
  podIds: readonly bigint[],
  opts: { network?: boolean } = {},
): Promise<void> {
  await withLock(client, cfg.bridge, async () => {
    const ports = await listPorts(client);
    const gone = typeof which === "function" ? which(ports) : which;
    const goneIds = new Set(gone.map((p) => p.uuid));
    const left = ports.filter((p) => !goneIds.has(p.uuid));
    const remaining = new Set(left.flatMap((p) => (p.attachment ? [p.attachment.segment] : [])));
    const ops: FlowOp[] = podIds.map((id) => ({ op: "delete", cookie: podCookie(id), mask: EXACT_MASK }));
    for (const seg of new Set(gone.flatMap((p) => (p.attachment ? [p.attachment.segment] : [])))) {
      if (!remaining.has(seg)) ops.push({ op: "delete", cookie: segmentCookie(seg), mask: EXACT_MASK });
    }
    const netId = networkId(cfg.name);
    const lastOfNetwork = !!opts.network && !left.some((p) => p.network === cfg.name) && (gone.length > 0 || (await bridgeIds(client, cfg.bridge))[hostKey(cfg.name)] !== undefined);
    if (lastOfNetwork) {
      // The fingerprint goes first: a crash after it leaves flows a later ADD reconciles, never a stale one that skips them.
      await setBridgeId(client, cfg.bridge, flowsKey(cfg.name), undefined);
      for (const kind of [CookieKind.Gateway, CookieKind.Route, CookieKind.Global]) ops.push({ op: "delete", cookie: cookie(kind, netId << 32n), mask: NETWORK_KIND_MASK });
    }
    // Flows first, while ovs-vswitchd is idle (a port removal keeps it busy for a while).
    await applyFlows(cfg.ofSocket, ops).catch((e) => {
      // No ovs-vswitchd: it holds no flows either; the ports still go.
      if (!(e instanceof CniError && e.code === Code.TryAgainLater)) throw e;
    });
    trace("flows deleted");
    await deletePorts(client, gone.map((p) => p.uuid));
    if (lastOfNetwork) await removeHostState(client, { bridge: cfg.bridge, network: cfg.name, netId, podCIDRs: cfg.podCIDRs, raw: left.length === 0 });
  });
}

/** One failed part of a DEL or GC, kept with its cause. */
export function partFailed(part: string, e: unknown): Error {
  return new Error(`${part}: ${messageOf(e)}`, { cause: e });
}

/** The error of a DEL or GC that went on past failures: code 100 naming each, all kept in an AggregateError. */
export function incomplete(what: string, errors: readonly Error[]): CniError {
  return new CniError(Code.StepFailed, `${what} incomplete: ${errors.map((e) => e.message).join("; ")}`, "", {
    cause: new AggregateError(errors, `${what}: ${errors.length} part(s) failed`),
  });
}

/** The CNI DEL of ovsplane. */
export async function del(req: CniRequest): Promise<void> {
  const cfg = parseConfig(req.conf);
  const hostName = hostVethName(req.containerID, req.ifname);
  const errors: Error[] = [];
  let ovsDown: CniError | undefined;
  let client: OvsdbClient | undefined;
  // The kernel takes 13–35 ms to delete a veth: it does so (off this thread, see LinkOps.deleteLink)
  // while OVS is being cleaned and the address released. The link edge is loaded first (~0.6 ms), so the
  // deletion starts at once rather than after the OVSDB connection's first events (~2 ms sooner done).
  await links().catch(() => undefined); // a failure is the veth part's, below
  const veth = deleteVeth(hostName).catch((e) => errors.push(partFailed("veth", e)));
  trace("DEL config parsed");
  calls.step("OVS");
  try {
    client = await connect(cfg.ovsdbSocket, { timeoutMs: OVS_TIMEOUT_MS });
    trace("OVSDB connected");
    const ours = (ports: readonly TaggedPort[]) => ports.filter((p) => p.name === hostName && p.network === cfg.name);
    await removeAttachments(client, cfg, ours, [attachmentId(cfg.name, req.containerID, req.ifname)]);
  } catch (e) {
    if (e instanceof CniError && e.code === Code.TryAgainLater) ovsDown = e;
    else errors.push(partFailed("OVS", e));
  } finally {
    client?.close();
  }
  trace("OVS cleaned");
  // The address is released while the kernel still deletes the veth: once its port and flows are gone
  // the old pod's end can take none of a new pod's traffic.
  calls.step("IPAM");
  await delegateIpam(req, "DEL").catch((e) => errors.push(partFailed("IPAM", e)));
  trace("IPAM released");
  calls.step("veth");
  await veth;
  trace("veth gone");
  if (ovsDown) {
    throw tryAgainLater("OVSDB", `${ovsDown.message}; the port of ${req.containerID}/${req.ifname} is still to be removed`, ovsDown);
  }
  if (errors.length) throw incomplete(`DEL of ${req.containerID}/${req.ifname}`, errors);
}
