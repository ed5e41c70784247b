// Pure: what a network left behind on a node (ports without veth, orphan veths, leases, pod flows) from facts read once.
import { attachmentKey } from "../../dataplane/attachment.ts";
import { attachmentId, parseVethAlias } from "../../dataplane/names.ts";
import { CookieKind, parseCookie } from "../../dataplane/pipeline.ts";

/** A kernel veth of the node. */
export interface VethFact {
  ifname: string;
  mtu?: number;
  ifalias?: string;
}

/** A tagged OVS port (any ovsplane network), as node-state reads it. */
export interface PortFact {
  name: string;
  network?: string;
  attachment?: { network: string; containerID: string; ifname: string; netns: string };
  tagError?: string;
}

/** A lease file of the network. */
export interface LeaseFact {
  ip: string;
  owner?: { containerID: string; ifname?: string };
  mtimeMs: number;
}

/** What a network left behind; every list is what `ovsplanectl gc` removes. */
export interface Residue {
  network: string;
  /** Ports of the network whose host veth is gone, or whose tags are broken. */
  ports: { name: string; attachment?: string; why: string }[];
  /** Host veths aliased to the network with no port of it. */
  veths: { ifname: string; attachment: string }[];
  /** Leases whose owner has no live attachment (no port with a veth). */
  leases: { ip: string; owner?: string }[];
  /** Pod flows (cookie kind Pod) whose attachment has no port on the bridge (any network), by flow id. */
  flows: { id: string; count: number }[];
}

/** An empty lease file younger than this is a reservation being written (IPAM GC's grace). */
export const LEASE_GRACE_MS = 60_000;

/** The attachments of a network that are alive: a port with whole tags and its host veth present. */
export function liveAttachments(network: string, ports: readonly PortFact[], veths: readonly VethFact[]): { containerID: string; ifname: string }[] {
  const links = new Set(veths.map((v) => v.ifname));
  return ports.flatMap((p) => (p.network === network && p.attachment && links.has(p.name) ? [{ containerID: p.attachment.containerID, ifname: p.attachment.ifname }] : []));
}

/** True when a residue list is empty. */
export function isClean(r: Residue): boolean {
  return !r.ports.length && !r.veths.length && !r.leases.length && !r.flows.length;
}

/**
 * The residue of one network. ports holds every network's ports (a pod flow is residue only when no
 * network's port claims it); leases is undefined when the IPAM keeps none we can read.
 */
export function findResidue(
  network: string,
  ports: readonly PortFact[],
  veths: readonly VethFact[],
  leases: readonly LeaseFact[] | undefined,
  flowCookies: readonly bigint[],
  now = Date.now(),
): Residue {
  const links = new Set(veths.map((v) => v.ifname));
  const live = liveAttachments(network, ports, veths);
  const liveKeys = new Set(live.map((a) => attachmentKey(a)));
  const out: Residue = { network, ports: [], veths: [], leases: [], flows: [] };
  for (const p of ports.filter((x) => x.network === network)) {
    const a = p.attachment;
    if (!a) out.ports.push({ name: p.name, why: p.tagError ?? "broken tags" });
    else if (!links.has(p.name)) out.ports.push({ name: p.name, attachment: attachmentKey(a), why: "host veth gone" });
  }
  for (const v of veths) {
    const a = parseVethAlias(v.ifalias);
    if (a?.network === network && !liveKeys.has(attachmentKey(a))) out.veths.push({ ifname: v.ifname, attachment: attachmentKey(a) });
  }
  for (const l of leases ?? []) {
    const o = l.owner;
    if (!o) {
      if (now - l.mtimeMs >= LEASE_GRACE_MS) out.leases.push({ ip: l.ip });
      continue;
    }
    const held = live.some((a) => a.containerID === o.containerID && (o.ifname === undefined || a.ifname === o.ifname));
    if (!held) out.leases.push({ ip: l.ip, owner: o.ifname === undefined ? o.containerID : `${o.containerID}/${o.ifname}` });
  }
  const ids = new Set(ports.flatMap((p) => (p.attachment ? [attachmentId(p.attachment.network, p.attachment.containerID, p.attachment.ifname)] : [])));
  const orphans = new Map<bigint, number>();
  for (const c of flowCookies) {
    const k = parseCookie(c);
    if (k?.kind === CookieKind.Pod && !ids.has(k.id)) orphans.set(k.id, (orphans.get(k.id) ?? 0) + 1);
  }
  out.flows = [...orphans].map(([id, count]) => ({ id: `0x${id.toString(16)}`, count }));
  return out;
}
