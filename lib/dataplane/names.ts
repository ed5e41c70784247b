// Deterministic names, MACs and ids of what ovsplane creates, derived from what it belongs to.
import { randomBytes, sha256, sha256Hex as sha } from "../net/hash.ts";

/** Host end of a pod's veth: "ovsp" + 11 hex of hash(containerID/ifname) = 15 characters. */
export function hostVethName(containerID: string, ifname: string): string {
  return `ovsp${sha(`${containerID}/${ifname}`).slice(0, 11)}`;
}

/** The flow-based VXLAN port of a bridge for one UDP port. */
export function tunnelPortName(dstPort: number): string {
  return `ovsp-vxlan${dstPort === 4789 ? "" : dstPort}`.slice(0, 15);
}

/** The internal port holding the pod ranges' gateway addresses. */
export const GATEWAY_PORT = "ovsplane-gw";

/** 40-bit id of an attachment, for its flows' cookie. */
export function attachmentId(network: string, containerID: string, ifname: string): bigint {
  return BigInt(`0x${sha(`${network}/${containerID}/${ifname}`).slice(0, 10)}`);
}

/** 8-bit id of a network, so two networks on one bridge keep their node and peer flows apart. */
export function networkId(network: string): bigint {
  return BigInt(`0x${sha(network).slice(0, 2)}`);
}

/** Five bytes behind 0x0a (locally administered, unicast) as a MAC. */
function localMac(bytes: Iterable<number>): string {
  return [0x0a, ...bytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/** A locally administered unicast MAC derived from a seed. */
export function macFrom(seed: string): string {
  return localMac(sha256(seed).subarray(0, 5));
}

/** The MAC of a bridge's gateway port (the pods' next hop). */
export function gatewayMac(bridge: string): string {
  return macFrom(`gw/${bridge}`);
}

/** A fresh random locally administered unicast MAC (for a pod interface). */
export function randomMac(): string {
  return localMac(randomBytes(5));
}

/** True for a MAC written as six hex pairs. */
export function isMac(s: unknown): s is string {
  return typeof s === "string" && /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s);
}

/** Prefix of the alias ovsplane writes on the host veths it creates. */
export const VETH_ALIAS_PREFIX = "ovsplane:";

/** The alias of a host veth: which network and attachment it belongs to. */
export function vethAlias(network: string, containerID: string, ifname: string): string {
  return `${VETH_ALIAS_PREFIX}${network}/${containerID}/${ifname}`;
}

/** Reads a host veth alias back, or undefined when the link is not ours. */
export function parseVethAlias(alias: string | undefined): { network: string; containerID: string; ifname: string } | undefined {
  if (!alias?.startsWith(VETH_ALIAS_PREFIX)) return undefined;
  const [network, containerID, ...rest] = alias.slice(VETH_ALIAS_PREFIX.length).split("/");
  const ifname = rest.join("/");
  return network && containerID && ifname ? { network, containerID, ifname } : undefined;
}
