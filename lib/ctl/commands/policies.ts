// ovsplanectl policies: which NetworkPolicies select each pod on this node, its isolation, and packets allowed per policy and denied per pod (flow counters).
import type { Argv } from "yargs";
import { CookieKind, parseCookie } from "../../dataplane/pipeline.ts";
import { policyRows, type PolicyNetworkReport, type PolicyPodRow } from "../../policy/report.ts";
import { bridgeKey, loadNetworks, nodeFlags, readBridges, readPolicyReport, selectNetworks } from "../node-state.ts";
import { guardAsync, report, table, type Out } from "../output.ts";

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
      report(a.json, { networks: nets }, (out) => printPolicies(out, nets));
    }),
};
