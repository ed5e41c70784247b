// What the agent reports of the node's policies in its state dir (policies.json), for ovsplanectl: who selects which pod, which cookie and conj_id is which policy rule.
import { hex } from "../ovs/flow.ts";
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
