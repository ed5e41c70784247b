// The agent's pure model: this node's facts and its peers from Node objects, the conflist, segments, node model, host spec.
import type { V1Namespace, V1Node } from "@kubernetes/client-node";
import type { PeerFlowSpec, PodFlowSpec } from "../dataplane/builders.ts";
import type { HostSpec } from "../dataplane/hoststate.ts";
import type { NodeModel } from "../dataplane/model.ts";
import { ipv4Of, type Attachment } from "../dataplane/attachment.ts";
import { attachmentId, gatewayMac, networkId } from "../dataplane/names.ts";
import { applyNodeFacts } from "../ctl/commands/install.ts";
import { validateConflist } from "../ctl/installer.ts";
import { clusterRanges, parseConfig, parseSegment, type OvsplaneConfig } from "../plugin/config.ts";
import { firstUsable, ipToString, parseCidr, tryParseIp } from "../net/ip.ts";
import type { NetConf } from "../cni/types.ts";

/** The annotation that names a node's underlay (tunnel) address, over its first InternalIP. */
export const TUNNEL_IP_ANNOTATION = "ovsplane.dev/tunnel-ip";
/** The Namespace label that names its pods' segment (VNI). */
export const SEGMENT_LABEL = "ovsplane.dev/segment";

/** What the agent knows of one node from its Node object. */
export interface NodeFacts {
  name: string;
  /** IPv4 pod ranges (the dataplane is IPv4 only), canonical. */
  podCIDRs: string[];
  /** The underlay address, when known. */
  address?: string;
}

const isV4 = (s: string) => tryParseIp(s)?.family === 4;

/** A Node's facts: `spec.podCIDRs` else `spec.podCIDR`; address from the tunnel-ip annotation, else the first IPv4 InternalIP. */
export function nodeFacts(n: V1Node): NodeFacts {
  const raw = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  const podCIDRs = raw.flatMap((r) => {
    try {
      const c = parseCidr(r);
      return c.family === 4 ? [`${c.network}/${c.prefix}`] : [];
    } catch {
      return [];
    }
  });
  const annotated = n.metadata?.annotations?.[TUNNEL_IP_ANNOTATION];
  const internal = (n.status?.addresses ?? []).find((a) => a.type === "InternalIP" && isV4(a.address))?.address;
  const address = annotated && isV4(annotated) ? annotated : internal;
  const f: NodeFacts = { name: n.metadata?.name ?? "", podCIDRs };
  if (address) f.address = address;
  return f;
}

/** nodeFacts per Node object: an informer replaces the object on every change, so a Node event recomputes one. */
const factsOf = (() => {
  const memo = new WeakMap<V1Node, NodeFacts>();
  return (n: V1Node): NodeFacts => {
    let f = memo.get(n);
    if (!f) memo.set(n, (f = nodeFacts(n)));
    return f;
  };
})();

/** Every other node with a pod range and an address, as peers (sorted by node name, then range). */
export function peersOf(nodes: readonly V1Node[], self: string): PeerFlowSpec[] {
  return nodes
    .map(factsOf)
    .filter((f) => f.name !== self && f.address && f.podCIDRs.length)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) // code-unit order: localeCompare (ICU) took ~20-60 ms for 1,000 Nodes under Bun
    .flatMap((f) => f.podCIDRs.map((podCIDR) => ({ nodeIP: f.address!, podCIDR })));
}

/** The ovsplane plugin objects of a conflist. */
function ovsplanePlugins(c: Record<string, unknown>): Record<string, unknown>[] {
  return ((Array.isArray(c.plugins) ? c.plugins : []) as Record<string, unknown>[]).filter((p) => p?.type === "ovsplane");
}

/**
 * The conflist the agent writes: the template with this node's facts filled in (tunnel.localIP, the
 * IPAM range), `agent.stateDir` set and no static `peers`; validated like `ovsplanectl install` does.
 * Undefined until both the pod range and the address are known. Throws when the result is invalid.
 */
export function agentConflist(template: Record<string, unknown>, self: NodeFacts, stateDir: string): Record<string, unknown> | undefined {
  const podCidr = self.podCIDRs[0];
  if (!podCidr || !self.address) return undefined;
  const c = applyNodeFacts(structuredClone(template), { podCidr, localIp: self.address });
  const plugins = ovsplanePlugins(c);
  if (!plugins.length) throw new Error("the conflist template has no plugin of type ovsplane");
  for (const p of plugins) {
    delete p.peers;
    p.agent = { stateDir };
  }
  validateConflist(c);
  return c;
}

/** The first ovsplane plugin of a conflist, parsed by the plugin's own parser. */
export function networkConfig(conflist: Record<string, unknown>): OvsplaneConfig {
  const p = ovsplanePlugins(conflist)[0];
  if (!p) throw new Error("the conflist has no plugin of type ovsplane");
  return parseConfig({ ...p, name: conflist.name, cniVersion: conflist.cniVersion } as NetConf);
}

/** What segments.json holds: each Namespace's segment, and a generation bumped on every change. */
export interface SegmentsFile {
  namespaces: Record<string, number>;
  generation: number;
}

/**
 * Each Namespace's segment: its `ovsplane.dev/segment` label when it is a valid VNI, else the
 * template's `segment`; `kube-system` unlabelled gets the first global segment (when there is one).
 * Keys sorted, so equal maps render equally.
 */
export function segmentMap(namespaces: readonly V1Namespace[], cfg: Pick<OvsplaneConfig, "segment" | "globalSegments">): Record<string, number> {
  const out: Record<string, number> = {};
  const names = namespaces.map((n) => n.metadata?.name).filter((n): n is string => !!n);
  const labelOf = new Map(namespaces.map((n) => [n.metadata?.name, n.metadata?.labels?.[SEGMENT_LABEL]]));
  for (const name of [...names].sort()) {
    const label = labelOf.get(name);
    let vni: number | undefined;
    if (label !== undefined) {
      try {
        vni = parseSegment(`namespace ${name} label ${SEGMENT_LABEL}`, label);
      } catch {
        vni = undefined; // a bad label is ignored: the default applies
      }
    }
    out[name] = vni ?? (name === "kube-system" && cfg.globalSegments[0] !== undefined ? cfg.globalSegments[0] : cfg.segment);
  }
  return out;
}

/** The gateway of a pod range: its first usable address, with and without the range's prefix. */
export function gatewayOf(podCIDR: string): { gatewayIP: string; withPrefix: string } {
  const ip = ipToString(firstUsable(podCIDR));
  return { gatewayIP: ip, withPrefix: `${ip}/${parseCidr(podCIDR).prefix}` };
}

/** The node model of the agent's one network: the bridge's ports, gateway MAC, gateway, peers, global segments. */
export function agentNodeModel(cfg: OvsplaneConfig, ofports: { tunnel: number; gateway: number }, self: NodeFacts, peers: readonly PeerFlowSpec[]): NodeModel {
  return {
    ports: { tunnel: ofports.tunnel, gateway: ofports.gateway, gatewayMAC: gatewayMac(cfg.bridge) },
    networks: [{ name: cfg.name, gatewayIP: gatewayOf(self.podCIDRs[0]!).gatewayIP, peers, globalSegments: cfg.globalSegments }],
  };
}

/** The host state of the agent's network: gateway address on each pod range, routes to every peer's range, masquerade, raw guard. */
export function agentHostSpec(cfg: OvsplaneConfig, self: NodeFacts, peers: readonly PeerFlowSpec[]): HostSpec {
  const gws = self.podCIDRs.map(gatewayOf);
  return {
    network: cfg.name,
    netId: networkId(cfg.name),
    gateways: gws.map((g) => g.withPrefix),
    gatewayIP: gws[0]!.gatewayIP,
    peers,
    podCIDRs: self.podCIDRs,
    clusterRanges: clusterRanges({ ...cfg, podCIDRs: self.podCIDRs, peers: [...peers] }),
    ...(cfg.clusterCIDRs ? { clusterCIDRs: cfg.clusterCIDRs } : {}),
    masquerade: cfg.masquerade,
  };
}

/** A pod port as the agent reads it from OVSDB: its attachment and OpenFlow port number. */
export interface PodPort {
  attachment: Attachment;
  ofport: number;
}

/** The builders' input for each pod of the network (ports without an IPv4 address or an ofport are skipped). */
export function podFlowSpecs(network: string, ports: readonly PodPort[]): PodFlowSpec[] {
  return ports.flatMap(({ attachment: a, ofport }) => {
    const ip = ipv4Of(a);
    if (a.network !== network || !ip || ofport <= 0) return [];
    return [{ id: attachmentId(network, a.containerID, a.ifname), port: ofport, ip, mac: a.mac, segment: a.segment }];
  });
}
