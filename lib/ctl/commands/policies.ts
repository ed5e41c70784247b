// ovsplanectl policies: which NetworkPolicies select each pod on this node, its isolation, and packets allowed per policy and denied per pod (flow counters).
import type { Argv } from "yargs";
import type { FlowEntry } from "../../ovs/openflow.ts";
import { hex } from "../../ovs/flow.ts";
import { CookieKind, parseCookie, PolicyPriority, Table } from "../../dataplane/pipeline.ts";
import type { PolicyReport } from "../../policy/report.ts";
import { describeRule } from "../../policy/report.ts";
import { bridgeKey, loadNetworks, nodeFlags, readBridges, readPolicyReport, selectNetworks, type PortState } from "../node-state.ts";
import { guardAsync, json, outTo, table, type Out } from "../output.ts";

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
export function policyRows(network: string, report: PolicyReport, ports: readonly PortState[], flows: readonly FlowEntry[]): PolicyNetworkReport {
  const drop = (table: number, port: number | undefined) =>
    flows.find((e) => e.flow.table === table && e.flow.priority === PolicyPriority.Default && parseCookie(e.flow.cookie)?.kind === CookieKind.Policy && parseCookie(e.flow.cookie)!.id === ((2n << 32n) | BigInt(port ?? -1)));
  const pods: PolicyPodRow[] = Object.entries(report.selected).map(([pod, policies]) => {
    const port = ports.find((p) => p.attachment && p.network === network && `${p.attachment.podNamespace}/${p.attachment.podName}` === pod)?.ofport;
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

/** Reads each selected network's report and bridge. */
export async function collectPolicies(f: { confDir: string; network?: string }): Promise<PolicyNetworkReport[]> {
  const networks = selectNetworks(loadNetworks(f.confDir).networks, f.network);
  const bridges = await readBridges(networks);
  return networks.map((n) => {
    const report = readPolicyReport(n.cfg);
    const b = bridges.get(bridgeKey(n.cfg))!;
    if (!report) return { network: n.cfg.name, error: n.cfg.agent ? "the agent has written no policies.json yet" : "not in agent mode: no NetworkPolicy", pods: [], policies: [] };
    const r = policyRows(n.cfg.name, report, b.ports, b.flows.filter((e) => parseCookie(e.flow.cookie)?.kind === CookieKind.Policy));
    return b.vswitchd.ok ? r : { ...r, error: `counters unknown: ovs-vswitchd does not answer: ${b.vswitchd.error}` };
  });
}

/** Prints each network's selected pods, then its policies. */
export function printPolicies(out: Out, nets: readonly PolicyNetworkReport[]): void {
  for (const n of nets) {
    out.line(`network ${n.network}${n.error ? `: ${n.error}` : ""}`);
    if (!n.pods.length) out.line("  no pod on this node is selected by a NetworkPolicy");
    else {
      const iso = (p: PolicyPodRow) => [p.isolated.ingress ? "ingress" : "", p.isolated.egress ? "egress" : ""].filter(Boolean).join("+") || "-";
      table(out, ["POD", "OFPORT", "ISOLATED", "DENIED IN", "DENIED OUT", "POLICIES"], n.pods.map((p) => [p.pod, String(p.ofport ?? "-"), iso(p), String(p.denied.ingress), String(p.denied.egress), p.policies.join(", ")]));
    }
    if (n.policies.length) {
      table(out, ["POLICY", "ALLOWED", "RULES"], n.policies.map((p) => [p.policy, String(p.allowed), p.rules.join("; ") || "(isolates only)"]));
    }
  }
}

function builder(y: Argv<object>) {
  return nodeFlags(y).example("$0 policies", "which NetworkPolicies select the pods on this node, with allowed and denied packets");
}

/** The `policies` command. */
export const policiesCommand = {
  command: "policies",
  describe: "list the NetworkPolicies that select pods on this node, with allowed and denied packet counts (changes nothing)",
  builder,
  handler: (a: Awaited<ReturnType<typeof builder>["argv"]>) =>
    guardAsync(async () => {
      const nets = await collectPolicies(a);
      const out = outTo();
      if (a.json) json(out, { networks: nets });
      else printPolicies(out, nets);
    }),
};
