// ClusterIP Services in OVS (the AntreaProxy way): a local pod's connection to ClusterIP:port hashed onto a ready endpoint and DNAT'd in the bridge.
import { act, IpProto, match, on, type Flow } from "../ovs/flow.ts";
import { cookie, CookieKind, CT_ZONE, CtMark, Priority, Reg, Table } from "./pipeline.ts";

/** The IP protocols a Service port is implemented for in OVS (SCTP is left to kube-proxy: see serviceFlows). */
export type ServiceProtocol = "TCP" | "UDP";

/** One endpoint of a Service port: a ready pod's address and its target port. */
export interface ServiceTarget {
  ip: string;
  port: number;
}

/** One port of a Service with its ready endpoints (empty: none ready). */
export interface ServicePortSpec {
  protocol: ServiceProtocol;
  port: number;
  targets: readonly ServiceTarget[];
}

/** A ClusterIP Service: its IPv4 ClusterIPs and ports. */
export interface ServiceSpec {
  namespace: string;
  name: string;
  clusterIPs: readonly string[];
  ports: readonly ServicePortSpec[];
}

/** Where a pod that picked itself is sent (the node: kube-proxy masquerades hairpin traffic). */
export interface ServiceNodePorts {
  gateway: number;
  gatewayMAC: string;
}

/** 40-bit FNV-1a of a Service's namespace/name. */
export function serviceId(namespace: string, name: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(`${namespace}/${name}`)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h & 0xffffffffffn;
}

/** Cookie of one Service's flows. */
export function serviceCookie(namespace: string, name: string): bigint {
  return cookie(CookieKind.Service, serviceId(namespace, name));
}

const PROTO = { TCP: IpProto.TCP, UDP: IpProto.UDP } as const;

/**
 * One Service's flows. Per ClusterIP with a port that has ready endpoints, its packets from local pods are
 * looked up with ct(nat) (ArpResponder: later packets of a connection come out DNAT'd). Per such port:
 * a new connection is hashed onto one endpoint (ServiceLB: multipath, symmetric L3/L4, hrw) and committed
 * with its DNAT, ct_mark Service (ServiceDNAT), then walks egress policy, forwarding and the segment check
 * as a packet to the endpoint; the endpoint's replies are un-DNAT'd by the ct(nat) lookups of Conntrack
 * (over the tunnel) and PodConntrack (a local endpoint), so the client only ever sees the ClusterIP.
 * A pod that picked itself (hairpin) is handed to the node instead, whose kube-proxy masquerades it.
 * Ports without ready endpoints get no flow: the node's kube-proxy REJECTs them as it does for its own
 * clients. Endpoints are sorted, so every node hashes alike; duplicates are dropped.
 */
export function serviceFlows(svc: ServiceSpec, ports: ServiceNodePorts): Flow[] {
  const c = serviceCookie(svc.namespace, svc.name);
  const toNode = [act.setMac("dl_dst", ports.gatewayMAC), act.output(ports.gateway)];
  const out: Flow[] = [];
  for (const ip of svc.clusterIPs) {
    const live = svc.ports.filter((p) => p.targets.length > 0);
    if (!live.length) continue;
    out.push({ table: Table.ArpResponder, priority: Priority.Normal, cookie: c, match: on.ipDst(ip), actions: [act.ctNat(CT_ZONE, Table.ServiceLB)] });
    for (const p of live) {
      const to = match(on.ipDst(ip), on.dstPort(PROTO[p.protocol], p.port));
      const targets = [...new Map(p.targets.map((t) => [`${t.ip}:${t.port}`, t])).values()].sort((a, b) => cmpTarget(a, b));
      out.push({ table: Table.ServiceLB, priority: Priority.Normal, cookie: c, match: match(to, on.ctState(["Trk", "New"])), actions: [act.multipath(targets.length, Reg.Endpoint), act.goto(Table.ServiceDNAT)] });
      targets.forEach((t, k) => {
        const chosen = match(to, on.reg(Reg.Endpoint, k));
        out.push({ table: Table.ServiceDNAT, priority: Priority.Source, cookie: c, match: match(chosen, on.ipSrc(t.ip)), actions: toNode });
        out.push({
          table: Table.ServiceDNAT, priority: Priority.Normal, cookie: c, match: chosen,
          actions: [act.ctDnat({ zone: CT_ZONE, table: Table.EgressTrack, ip: t.ip, port: t.port, mark: CtMark.Service })],
        });
      });
    }
  }
  return out;
}

function cmpTarget(a: ServiceTarget, b: ServiceTarget): number {
  const n = (ip: string) => ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a.ip) - n(b.ip) || a.port - b.port;
}
