// The agent's Service side: informers on Services and EndpointSlices (cluster-wide), API objects as ServiceSpecs, the node's Service flows.
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { cookie, CookieKind, KIND_MASK } from "../dataplane/pipeline.ts";
import type { CookieFilter } from "../dataplane/model.ts";
import { serviceFlows, type ServiceNodePorts, type ServicePortSpec, type ServiceProtocol, type ServiceSpec, type ServiceTarget } from "../dataplane/services.ts";
import type { Flow } from "../ovs/flow.ts";
import { InformerGroup } from "./watch.ts";

/** Every Service flow of the node (read back and diffed as one scope). */
export const SERVICE_SCOPE: readonly CookieFilter[] = [{ cookie: cookie(CookieKind.Service, 0n), mask: KIND_MASK }];

/** The label an EndpointSlice names its Service with. */
const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/** The informers of the Service inputs. */
export class ServiceWatch extends InformerGroup {
  readonly services = this.watch<V1Service>("/api/v1/services", "services");
  readonly slices = this.watch<V1EndpointSlice>("/apis/discovery.k8s.io/v1/endpointslices", "endpointslices");
}

const isIPv4 = (s: string | undefined): s is string => !!s && /^\d{1,3}(\.\d{1,3}){3}$/.test(s);

/**
 * Services and their EndpointSlices as the ServiceSpecs OVS implements: ClusterIP-bearing Services (not
 * headless, not ExternalName), IPv4 ClusterIPs, TCP and UDP ports; a port's targets are the ready endpoints
 * (conditions.ready unset counts as ready, as the API documents) of the Service's IPv4 slices, by the slice
 * port of the same name and protocol. SCTP ports are left to kube-proxy (the userspace datapath's conntrack
 * cannot NAT SCTP ports); sessionAffinity is not implemented (every connection is hashed on its own).
 */
export function serviceSpecsOf(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): ServiceSpec[] {
  const byService = new Map<string, V1EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!svc || s.addressType !== "IPv4") continue;
    const key = `${s.metadata?.namespace ?? ""}/${svc}`;
    byService.set(key, [...(byService.get(key) ?? []), s]);
  }
  const out: ServiceSpec[] = [];
  for (const svc of services) {
    const spec = svc.spec;
    const [namespace, name] = [svc.metadata?.namespace ?? "", svc.metadata?.name ?? ""];
    if (!spec || spec.type === "ExternalName") continue;
    const clusterIPs = [...new Set([spec.clusterIP, ...(spec.clusterIPs ?? [])].filter(isIPv4))].sort();
    if (!clusterIPs.length) continue;
    const mine = byService.get(`${namespace}/${name}`) ?? [];
    const ports: ServicePortSpec[] = [];
    for (const p of spec.ports ?? []) {
      const protocol = (p.protocol ?? "TCP") as string;
      if (protocol !== "TCP" && protocol !== "UDP") continue;
      const targets: ServiceTarget[] = [];
      for (const s of mine) {
        const sp = (s.ports ?? []).find((x) => (x.name ?? "") === (p.name ?? "") && (x.protocol ?? "TCP") === protocol);
        if (sp?.port === undefined || sp.port === null) continue;
        for (const e of s.endpoints ?? []) {
          if (e.conditions?.ready === false) continue;
          const ip = e.addresses?.find(isIPv4);
          if (ip) targets.push({ ip, port: sp.port });
        }
      }
      ports.push({ protocol: protocol as ServiceProtocol, port: p.port, targets });
    }
    out.push({ namespace, name, clusterIPs, ports });
  }
  return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/** The Service flows a reconcile wants, whether they differ from the last written, and the call that records them written. */
export interface ServiceWant {
  flows: Flow[];
  changed: boolean;
  applied(): void;
}

/** Compiles the node's Service flows from the informers' caches, again only when an input changed. */
export class ServiceCompiler {
  private last?: { key: string; flows: Flow[] };
  private appliedKey?: string;

  /** The wanted flows, or undefined while the informers have not listed (leave the bridge's as they are). */
  want(w: ServiceWatch | undefined, ports: ServiceNodePorts): ServiceWant | undefined {
    if (!w?.synced) return undefined;
    const specs = serviceSpecsOf(w.services.list(), w.slices.list());
    const key = JSON.stringify([specs, ports]);
    if (this.last?.key !== key) this.last = { key, flows: specs.flatMap((s) => serviceFlows(s, ports)) };
    return { flows: this.last.flows, changed: this.appliedKey !== key, applied: () => void (this.appliedKey = key) };
  }

  /** Forgets what was written (the next reconcile reads the bridge's Service flows back). */
  reset(): void {
    this.appliedKey = undefined;
  }
}
