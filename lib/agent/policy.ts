// The agent's NetworkPolicy side: informers on NetworkPolicies and all Pods, API objects as lib/policy's model, the node's policy flows recompiled when an input changed.
import type { V1Namespace, V1NetworkPolicy, V1Pod } from "@kubernetes/client-node";
import { ipv4Of } from "../dataplane/attachment.ts";
import { cookie, CookieKind, KIND_MASK } from "../dataplane/pipeline.ts";
import type { CookieFilter } from "../dataplane/model.ts";
import type { Flow } from "../ovs/flow.ts";
import { trace } from "../host/exec.ts";
import { compilePolicies, type LocalPod, type PolicyFlows } from "../policy/compile.ts";
import type { LabelSelector, NamedPort, NamespaceInfo, PodInfo, Policy, PolicyPeer, PolicyPort, PolicyProtocol, PolicyRule } from "../policy/model.ts";
import type { PodPort } from "./model.ts";
import { InformerGroup } from "./watch.ts";
import { writeAtomic } from "./files.ts";
import { POLICIES_FILE, policyReport, policyRows } from "../policy/report.ts";
import { Gauge, type Registry } from "prom-client";
import { dumpFlowsNative } from "../ovs/openflow-conn.ts";
import { join } from "node:path";

/** Every policy flow of the node (read back and diffed as one scope). */
export const POLICY_SCOPE: readonly CookieFilter[] = [{ cookie: cookie(CookieKind.Policy, 0n), mask: KIND_MASK }];

/** The informers of the policy inputs: NetworkPolicies and the cluster's Pods (peers' labels and addresses). */
export class PolicyWatch extends InformerGroup {
  readonly policies = this.watch<V1NetworkPolicy>("/apis/networking.k8s.io/v1/networkpolicies", "networkpolicies");
  readonly pods = this.watch<V1Pod>("/api/v1/pods", "all pods");
}

const selector = (s: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined): LabelSelector =>
  ({ ...(s?.matchLabels ? { matchLabels: s.matchLabels } : {}), ...(s?.matchExpressions ? { matchExpressions: s.matchExpressions } : {}) });

const protocol = (p: string | undefined): PolicyProtocol => (p === "UDP" || p === "SCTP" ? p : "TCP");

function port(p: { protocol?: string; port?: number | string; endPort?: number }): PolicyPort {
  return { protocol: protocol(p.protocol), ...(p.port === undefined ? {} : { port: p.port }), ...(p.endPort === undefined ? {} : { endPort: p.endPort }) };
}

function peer(p: { podSelector?: object; namespaceSelector?: object; ipBlock?: { cidr: string; except?: string[] } }): PolicyPeer {
  return {
    ...(p.podSelector ? { podSelector: selector(p.podSelector) } : {}),
    ...(p.namespaceSelector ? { namespaceSelector: selector(p.namespaceSelector) } : {}),
    ...(p.ipBlock ? { ipBlock: { cidr: p.ipBlock.cidr, except: p.ipBlock.except ?? [] } } : {}),
  };
}

function rule(peers: object[] | undefined, ports: object[] | undefined): PolicyRule {
  return { ...(peers ? { peers: peers.map(peer) } : {}), ...(ports ? { ports: ports.map(port) } : {}) };
}

/** A NetworkPolicy object as the model's Policy. */
export function policyOf(np: V1NetworkPolicy): Policy {
  const s = np.spec ?? ({} as NonNullable<V1NetworkPolicy["spec"]>);
  return {
    namespace: np.metadata?.namespace ?? "default",
    name: np.metadata?.name ?? "",
    podSelector: selector(s.podSelector),
    ...(s.policyTypes?.length ? { policyTypes: s.policyTypes as ("Ingress" | "Egress")[] } : {}),
    // Plain JSON (lists and watch events) names it `from`; client-node's model `_from`.
    ...(s.ingress ? { ingress: s.ingress.map((r) => rule(r._from ?? (r as { from?: object[] }).from, r.ports)) } : {}),
    ...(s.egress ? { egress: s.egress.map((r) => rule(r.to, r.ports)) } : {}),
  };
}

/** A Pod object as the model's PodInfo (its IPv4 address from status; named container ports). */
export function podInfoOf(p: V1Pod): PodInfo {
  const ips = [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)].filter((x): x is string => !!x && !x.includes(":"));
  const ports: NamedPort[] = (p.spec?.containers ?? []).flatMap((c) =>
    (c.ports ?? []).flatMap((cp) => (cp.name ? [{ name: cp.name, port: cp.containerPort, protocol: protocol(cp.protocol) }] : [])),
  );
  return {
    namespace: p.metadata?.namespace ?? "default",
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    ...(ips[0] && !p.spec?.hostNetwork ? { ip: ips[0] } : {}),
    ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}),
    ports,
  };
}

/** This node's attachments of the network that name their Pod, with their OpenFlow port and IPv4 address. */
export function localPodsOf(network: string, ports: readonly PodPort[]): LocalPod[] {
  return ports.flatMap(({ attachment: a, ofport }) => {
    const ip = ipv4Of(a);
    return a.network === network && ip && ofport > 0 && a.podNamespace && a.podName ? [{ ofport, ip, namespace: a.podNamespace, name: a.podName }] : [];
  });
}

/** The policy flows a reconcile wants, whether they differ from the last written, and the call that records them written. */
export interface PolicyWant {
  flows: Flow[];
  compiled: PolicyFlows;
  changed: boolean;
  /** The flows last written (an incremental reconcile diffs against them instead of reading the bridge's back). */
  previous?: readonly Flow[];
  applied(): void;
}

/**
 * Compiles the node's policy flows from the informers' caches, again only when an input changed (policies,
 * pods' labels, addresses and named ports, namespaces' labels, this node's pod ports).
 */
export class PolicyCompiler {
  private last?: { key: string; out: PolicyFlows };
  /** The informers' generation, namespaces and local ports the last key was computed from (a Node event skips the rest). */
  private quick?: { gen: number; rest: string; key: string };
  private appliedKey?: string;
  private appliedFlows?: readonly Flow[];
  /** The network and pod ports of the last compile (for the counters' pod names). */
  private seen?: { network: string; ports: readonly PodPort[] };

  /** @param stateDir where policies.json (lib/policy/report.ts) is written once the flows are */
  constructor(private readonly stateDir?: string) {}

  /** The wanted flows, or undefined while the informers have not listed (leave the bridge's as they are). */
  want(w: PolicyWatch | undefined, namespaces: readonly V1Namespace[], network: string, ports: readonly PodPort[]): PolicyWant | undefined {
    if (!w?.synced) return undefined;
    const ns: NamespaceInfo[] = namespaces.map((n) => ({ name: n.metadata?.name ?? "", labels: n.metadata?.labels ?? {} }));
    const local = localPodsOf(network, ports);
    this.seen = { network, ports };
    const rest = JSON.stringify([ns, local]);
    let key: string;
    if (this.last && this.quick?.gen === w.generation && this.quick.rest === rest) key = this.quick.key;
    else {
      // Only what the flows depend on is compared: a Pod's status or a policy's metadata changing recompiles nothing.
      const policies = w.policies.list().map(policyOf);
      const pods = w.pods.list().map(podInfoOf);
      key = JSON.stringify([policies, pods, rest]);
      trace(`policy inputs keyed (${policies.length} policies, ${pods.length} pods)`);
      if (this.last?.key !== key) {
        this.last = { key, out: compilePolicies({ policies, pods, namespaces: ns, local }) };
        trace(`policy flows compiled (${this.last.out.flows.length})`);
      }
      this.quick = { gen: w.generation, rest, key };
    }
    const out = this.last!.out;
    const applied = () => {
      if (this.appliedKey === key) return;
      this.appliedKey = key;
      this.appliedFlows = out.flows;
      if (this.stateDir) writeAtomic(join(this.stateDir, POLICIES_FILE), JSON.stringify(policyReport(out), null, 1) + "\n");
    };
    return { flows: out.flows, compiled: out, changed: this.appliedKey !== key, ...(this.appliedFlows ? { previous: this.appliedFlows } : {}), applied };
  }

  /** The last compiled flows with the network and pod ports they were compiled for, if any. */
  get current(): { compiled: PolicyFlows; network: string; ports: readonly PodPort[] } | undefined {
    return this.last && this.seen ? { compiled: this.last.out, ...this.seen } : undefined;
  }

  /** Forgets what was written (the next reconcile reads the bridge's policy flows back). */
  reset(): void {
    this.appliedKey = undefined;
    this.appliedFlows = undefined;
  }
}

/**
 * `ovsplane_policy_packets`, read from the policy flows' counters at each scrape: per policy the packets its
 * rules allowed (new connections), per isolated pod and direction the packets its default deny dropped.
 */
export function policyMetrics(registry: Registry, compiler: PolicyCompiler, ofSocket: () => string | undefined): Gauge {
  return new Gauge({
    name: "ovsplane_policy_packets",
    help: "Packets of new connections allowed per NetworkPolicy (verdict=allowed, policy) and dropped per isolated pod (verdict=denied, pod, direction), from the flows' counters",
    labelNames: ["verdict", "policy", "pod", "direction"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const cur = compiler.current;
      const sock = ofSocket();
      if (!cur || !sock) return;
      const flows = await dumpFlowsNative(sock, { cookie: POLICY_SCOPE[0]!.cookie, mask: POLICY_SCOPE[0]!.mask }, { timeoutMs: 1000 }).catch(() => undefined);
      if (!flows) return;
      const r = policyRows(cur.network, policyReport(cur.compiled), cur.ports, flows);
      for (const p of r.policies) this.set({ verdict: "allowed", policy: p.policy }, p.allowed);
      for (const p of r.pods) for (const d of ["ingress", "egress"] as const) if (p.isolated[d]) this.set({ verdict: "denied", pod: p.pod, direction: d }, p.denied[d]);
    },
  });
}
