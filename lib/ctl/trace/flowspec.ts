// Pure: the ofproto/trace flow of a traced packet, from who sends it and where it goes.
import { formatValue, ipv4 } from "../../ovs/flow.ts";

/** Transport protocols a trace can carry. */
export const PROTOS = ["tcp", "udp", "icmp"] as const;
/** One of PROTOS. */
export type Proto = (typeof PROTOS)[number];

/** Where a traced packet goes: an IPv4 address, and a port for TCP and UDP. */
export interface Target {
  ip: string;
  port?: number;
}

/** Reads `--to IP[:PORT]`; throws on anything else. */
export function parseTarget(text: string): Target {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw new Error(`--to ${JSON.stringify(text)}: expected IPv4[:PORT]`);
  ipv4(m[1]!); // validates the octets
  const t: Target = { ip: m[1]! };
  if (m[2] !== undefined) {
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new Error(`--to ${JSON.stringify(text)}: port out of range`);
    t.port = port;
  }
  return t;
}

/** What the flow of a trace is built from. */
export interface FlowSpecInput {
  proto: Proto;
  inPort: number;
  dlSrc: string;
  dlDst: string;
  nwSrc: string;
  to: Target;
}

/**
 * The flow for `ofproto/trace BRIDGE FLOW`, protocol first. ofproto/trace parses an exact flow and
 * refuses `tp_dst` for UDP ("prerequisites not met"): the port is written `tcp_dst`/`udp_dst`; ICMP is
 * an echo request (type 8).
 */
export function flowSpec(f: FlowSpecInput): string {
  const parts = [f.proto, `in_port=${f.inPort}`, `dl_src=${f.dlSrc}`, `dl_dst=${f.dlDst}`, `nw_src=${f.nwSrc}`, `nw_dst=${f.to.ip}`];
  if (f.proto === "icmp") parts.push("icmp_type=8", "icmp_code=0");
  else if (f.to.port !== undefined) parts.push(`${f.proto}_dst=${f.to.port}`);
  return parts.join(",");
}

/** The first host address of a CIDR (a network's gateway by convention): 10.244.1.0/24 → 10.244.1.1. */
export function firstHost(cidr: string): string {
  const [addr, len] = cidr.split("/") as [string, string | undefined];
  const bits = Number(len ?? 32);
  const mask = bits === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - bits)) - 1n);
  return formatValue("ipv4", (ipv4(addr) & mask) + 1n);
}
