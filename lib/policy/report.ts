// What the agent reports of the node's policies (policies.json in its state dir; the counters of its flows) for ovsplanectl and /metrics: who selects which pod, which cookie and conj_id is which policy rule.
import { hex } from "../ovs/flow-text.ts";
import type { FlowEntry } from "../ovs/openflow.ts";
import { CookieKind, parseCookie, PolicyPriority, Table } from "../dataplane/pipeline.ts";
import { policyCookie, type PolicyFlows, type RuleRef } from "./compile.ts";

/** The report's file name in the agent's state dir. */
export const POLICIES_FILE = "policies.json";

/** The content of policies.json. */
export interface PolicyReport {
  /** Each local pod a policy selects (`namespace/name`) with those policies. */
  selected: Record<string, string[]>;
  /** Each conjunction (conj_id; 0: a rule that allows everything to or from its pods) with its policy rule. */
  rules: RuleRef[];
  /** Each policy's verdict cookie (hex) with its `namespace/name`. */
  cookies: Record<string, string>;
}

/** The report of compiled policy flows (pure). */
export function policyReport(out: PolicyFlows): PolicyReport {
  const names = [...new Set(out.rules.map((r) => r.policy).concat([...out.selected.values()].flat()))].sort();
  return {
    selected: Object.fromEntries(out.selected),
    rules: out.rules,
    cookies: Object.fromEntries(names.map((n) => [hex(policyCookie(n.slice(0, n.indexOf("/")), n.slice(n.indexOf("/") + 1))), n])),
  };
}

/** Reads policies.json's text back; undefined when it is not a report. */
export function parsePolicyReport(text: string): PolicyReport | undefined {
  try {
    const r = JSON.parse(text) as Partial<PolicyReport>;
    if (typeof r.selected !== "object" || !Array.isArray(r.rules) || typeof r.cookies !== "object") return undefined;
    return r as PolicyReport;
  } catch {
    return undefined;
  }
}

/** The rule a conj_id names, as words ("np-a/web ingress rule 0"). */
export function describeRule(r: Pick<RuleRef, "policy" | "direction" | "rule">): string {
  return `${r.policy} ${r.direction.toLowerCase()} rule ${r.rule}`;
}

/** A pod port as policyRows needs it (ovsplanectl's PortState, the agent's PodPort). */
export interface PolicyPort {
  ofport?: number;
  attachment?: { network: string; podNamespace?: string; podName?: string };
}

/** One pod a policy selects. */
export interface PolicyPodRow {
  pod: string;
  ofport?: number;
  policies: string[];
  isolated: { ingress: boolean; egress: boolean };
  /** Packets of new connections dropped by its isolation (the default-deny flows' counters). */
  denied: { ingress: number; egress: number };
}

/** One policy with the packets its rules allowed (new connections; established ones pass before any rule). */
export interface PolicyRow {
  policy: string;
  rules: string[];
  allowed: number;
}

/** What `policies --json` prints per network. */
export interface PolicyNetworkReport {
  network: string;
  error?: string;
  pods: PolicyPodRow[];
  policies: PolicyRow[];
}

/** The rows of one network from its agent's report and the bridge's policy flows with their counters (pure). */
export function policyRows(network: string, report: PolicyReport, ports: readonly PolicyPort[], flows: readonly FlowEntry[]): PolicyNetworkReport {
  const drop = (table: number, port: number | undefined) =>
    flows.find((e) => e.flow.table === table && e.flow.priority === PolicyPriority.Default && parseCookie(e.flow.cookie)?.kind === CookieKind.Policy && parseCookie(e.flow.cookie)!.id === ((2n << 32n) | BigInt(port ?? -1)));
  const pods: PolicyPodRow[] = Object.entries(report.selected).map(([pod, policies]) => {
    const port = ports.find((p) => p.attachment?.network === network && `${p.attachment.podNamespace}/${p.attachment.podName}` === pod)?.ofport;
    const [inDrop, outDrop] = [drop(Table.IngressRule, port), drop(Table.EgressRule, port)];
    return {
      pod, ...(port === undefined ? {} : { ofport: port }), policies,
      isolated: { ingress: !!inDrop, egress: !!outDrop },
      denied: { ingress: Number(inDrop?.stats.packets ?? 0n), egress: Number(outDrop?.stats.packets ?? 0n) },
    };
  });
  const byCookie = new Map<string, number>();
  for (const e of flows) byCookie.set(hex(e.flow.cookie), (byCookie.get(hex(e.flow.cookie)) ?? 0) + Number(e.stats.packets));
  const policies = Object.entries(report.cookies).map(([c, policy]) => ({
    policy,
    rules: report.rules.filter((r) => r.policy === policy).map((r) => `${describeRule(r)}${r.conjId ? ` (conj_id ${r.conjId})` : " (allows all)"}`),
    allowed: byCookie.get(c) ?? 0,
  }));
  return { network, pods, policies };
}
