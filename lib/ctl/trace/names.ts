// What a trace is explained with: the pipeline's table names and purposes, cookie owners, and the node's pods and networks.
import { formatValue } from "../../ovs/flow.ts";
import { CookieKind, parseCookie, Table } from "../../dataplane/pipeline.ts";

/** A table's name (as the README's pipeline table spells it) and its purpose in one line. */
export interface TableInfo {
  name: string;
  purpose: string;
}

/** Every pipeline table by number: name and one-line purpose. */
export const TABLES: Readonly<Record<number, TableInfo>> = {
  [Table.Classifier]: { name: "classifier", purpose: "who sent it: a pod, a known peer over the tunnel, or the node; sets the source segment" },
  [Table.SpoofGuard]: { name: "spoof guard", purpose: "a pod sends only with its own MAC and IP" },
  [Table.ArpResponder]: { name: "ARP responder", purpose: "ARP answered in place; a pod's IP goes on to L3 forwarding" },
  [Table.FromNode]: { name: "from node", purpose: "the node's ARP reaches its pods; its ARP for peers' pod ranges is answered" },
  [Table.Conntrack]: { name: "conntrack", purpose: "IP from the node or the tunnel is looked up in ovsplane's conntrack zone" },
  [Table.ConntrackState]: { name: "conntrack state", purpose: "connections from the node committed; their replies go back to the node" },
  [Table.L3Forwarding]: { name: "L3 forwarding", purpose: "where it goes: a local pod, a peer node over the tunnel, or the node" },
  [Table.PodConntrack]: { name: "pod conntrack", purpose: "a pod's packet for a local pod is looked up in the conntrack zone" },
  [Table.PodReply]: { name: "pod reply", purpose: "a reply of a connection the node started goes back to the node" },
  [Table.SegmentCheck]: { name: "segment check", purpose: "only same-segment, global-segment or node traffic reaches a pod" },
  [Table.EgressTrack]: { name: "egress track", purpose: "a pod a NetworkPolicy selects: its packets are looked up in the conntrack zone" },
  [Table.EgressRule]: { name: "egress rule", purpose: "NetworkPolicy egress: established passes; a new connection of an isolated pod only by a rule" },
  [Table.ServiceLB]: { name: "service LB", purpose: "a new connection to a ClusterIP:port is hashed onto one of its ready endpoints" },
  [Table.ServiceDNAT]: { name: "service DNAT", purpose: "the connection is committed with its DNAT to the endpoint; a pod that picked itself goes to kube-proxy" },
  [Table.TunnelOut]: { name: "tunnel out", purpose: "a connection a policy check passed is committed before it leaves for a peer" },
  [Table.IngressRule]: { name: "ingress rule", purpose: "NetworkPolicy ingress: established and node traffic pass; a new connection to an isolated pod only by a rule" },
} as const;

/** The name of a table ("table N" for one the pipeline does not have). */
export function tableName(n: number): string {
  return TABLES[n]?.name ?? `table ${n}`;
}

/** A local pod as the explanation names it, from its port's tags. */
export interface PodRef {
  /** Its flows' cookie id (names.attachmentId). */
  id: bigint;
  /** "namespace/name", or the container ID when the pod has no Kubernetes names. */
  label: string;
  ofport?: number;
  segment: number;
  ip?: string;
  mac: string;
}

/** A network on the bridge: its cookie id and its peers. */
export interface NetRef {
  name: string;
  /** 8-bit network id (names.networkId). */
  netId: bigint;
  peers: readonly { nodeIP: string; podCIDR: string }[];
}

/** What the explanation knows about the node: its pods, networks and shared ports, and who sent the packet. */
export interface TraceContext {
  pods: readonly PodRef[];
  networks: readonly NetRef[];
  gatewayPort?: number;
  tunnelPort?: number;
  /** The sender: a local pod, or the node. */
  from?: PodRef | "node";
  /** NetworkPolicy names by verdict cookie (hex), from the agent's policies.json. */
  policies?: Readonly<Record<string, string>>;
  /** Policy rules by conj_id, in words ("np-a/web ingress rule 0"). */
  rules?: Readonly<Record<number, string>>;
}

const ip4 = (v: bigint) => formatValue("ipv4", v & 0xffffffffn);

/** Who owns a flow, by its cookie: "pod default/web", "segment 100", "peer 198.18.0.2", "route to …", "node defaults". */
export function cookieOwner(c: bigint | undefined, ctx: TraceContext): string | undefined {
  if (c === undefined) return undefined;
  const p = parseCookie(c);
  if (!p) return `not ovsplane's (cookie 0x${c.toString(16)})`;
  const net = (id: bigint) => ctx.networks.find((n) => n.netId === id >> 32n)?.name ?? `network #${id >> 32n}`;
  switch (p.kind) {
    case CookieKind.Node:
      return "node defaults";
    case CookieKind.Segment:
      return `segment ${p.id}`;
    case CookieKind.Peer:
      return `peer ${ip4(p.id)}`;
    case CookieKind.Pod: {
      const pod = ctx.pods.find((x) => x.id === p.id);
      return pod ? `pod ${pod.label}` : `pod #${p.id.toString(16)} (no port)`;
    }
    case CookieKind.Gateway:
      return `gateway of ${net(p.id)}`;
    case CookieKind.Route: {
      const ip = ip4(p.id);
      const cidr = ctx.networks.flatMap((n) => n.peers).find((x) => x.nodeIP === ip)?.podCIDR;
      return `route to ${cidr ? `${cidr} via ` : ""}peer ${ip} (${net(p.id)})`;
    }
    case CookieKind.Global:
      return `global segment ${p.id & 0xffffffffn} (${net(p.id)})`;
    case CookieKind.Policy: {
      const role = p.id >> 32n;
      const low = p.id & 0xffffffffn;
      if (role === 2n) return `policy isolation of ${ctx.pods.find((x) => x.ofport === Number(low))?.label ?? `port ${low}`}`;
      if (role === 1n) return `NetworkPolicy ${ctx.policies?.[`0x${c.toString(16)}`] ?? `#${low.toString(16)}`}`;
      return "NetworkPolicy clauses";
    }
    default:
      return `ovsplane kind ${p.kind}`;
  }
}

/** The pod on an OpenFlow port, or undefined. */
export function podOnPort(ctx: TraceContext, port: number | undefined): PodRef | undefined {
  return port === undefined ? undefined : ctx.pods.find((p) => p.ofport === port);
}

/** A port in words: "pod default/a2 (port 4)", "the gateway (port 1)", "the tunnel (port 2)". */
export function portName(ctx: TraceContext, port: number): string {
  if (port === ctx.gatewayPort) return `the gateway (port ${port})`;
  if (port === ctx.tunnelPort) return `the tunnel (port ${port})`;
  const pod = podOnPort(ctx, port);
  return pod ? `pod ${pod.label} (port ${port})` : `port ${port}`;
}
