// ovsplane-agent's command line (yargs): options, --help with examples, start and signal handling.
import { hostname } from "node:os";
import { messageOf } from "../cni/errors.ts";
import { Agent, type AgentOptions } from "./agent.ts";

/** The node name when --node-name is not given: $NODE_NAME, else the hostname. */
export function defaultNodeName(env: Record<string, string | undefined>): string {
  return env.NODE_NAME || hostname();
}

/** --gc-grace (seconds) in ms; a negative or non-numeric value is refused. */
export function gcGraceMs(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`--gc-grace ${seconds}: expected seconds >= 0`);
  return seconds * 1000;
}

/** Parses the command line into agent options (yargs; prints --help and exits on it). */
export async function parseArgs(argv: string[], env: Record<string, string | undefined>): Promise<AgentOptions> {
  const { default: yargs } = await import("yargs");
  const a = await yargs(argv)
    .scriptName("ovsplane-agent")
    .usage("$0 --conf-file TEMPLATE [options]\n\nWatches Nodes, Namespaces, Pods and NetworkPolicies, writes this node's conflist and segments.json, keeps the node-wide flows and host state of the ovsplane network, enforces NetworkPolicy for this node's pods, removes attachments whose Pod is gone (after --gc-grace) and moves running pods when their Namespace's segment changes.")
    .option("kubeconfig", { type: "string", describe: "kubeconfig file (default: the in-cluster config)" })
    .option("node-name", { type: "string", describe: "this node's Node name (default: $NODE_NAME, then the hostname)" })
    .option("conf-file", { type: "string", demandOption: true, describe: "the conflist template; this node's address and pod range are filled in" })
    .option("cni-conf-dir", { type: "string", default: "/etc/cni/net.d", describe: "where the conflist is written (10-ovsplane.conflist)" })
    .option("state-dir", { type: "string", default: "/var/run/ovsplane", describe: "where segments.json is written (the plugin reads it)" })
    .option("listen", { type: "string", default: "127.0.0.1:9109", describe: "HOST:PORT of /healthz, /readyz and /metrics" })
    .option("gc-grace", { type: "number", default: 30, describe: "seconds an attachment stays without its Pod on this node before GC removes it" })
    .example("$0 --conf-file /etc/ovsplane/conflist.json", "in a DaemonSet pod: in-cluster config, $NODE_NAME from the downward API")
    .example("$0 --kubeconfig ~/.kube/config --node-name worker-1 --conf-file tmpl.conflist --cni-conf-dir /tmp/net.d --state-dir /tmp/ovsplane", "by hand, against a cluster")
    .strict()
    .help()
    .version(false)
    .parseAsync();
  const o: AgentOptions = {
    nodeName: a.nodeName ?? defaultNodeName(env),
    confFile: a.confFile,
    cniConfDir: a.cniConfDir,
    stateDir: a.stateDir,
    listen: a.listen,
    gcGraceMs: gcGraceMs(a.gcGrace),
  };
  if (a.kubeconfig) o.kubeconfig = a.kubeconfig;
  return o;
}

/** Runs the agent until SIGTERM or SIGINT; a start failure is one line on stderr and exit code 1. */
export async function main(argv: string[], env: Record<string, string | undefined>): Promise<void> {
  let agent: Agent;
  try {
    const o = await parseArgs(argv, env);
    agent = new Agent(o);
    await agent.start();
  } catch (e) {
    process.stderr.write(`ovsplane-agent: ${messageOf(e)}\n`);
    process.exitCode = 1;
    process.exit(1);
  }
  const stop = (sig: string) => {
    process.stderr.write(`ovsplane-agent: ${sig}: stopping\n`);
    void agent.stop().finally(() => process.exit(0));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}
