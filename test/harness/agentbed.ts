// Two simulated nodes, the fake API server and ovsplane-agent on each (in the node's netns): the agent integration tests' bed.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnApiServer, type ApiServerProcess } from "./apiserver/process.ts";
import { createOutsideHost } from "./outside.ts";
import { killPid } from "./netns.ts";
import { connectNodes, createNode, createPod, pidAlive, REPO_ROOT, runPlugin, sleep, teardownAll, type SimNode, type SimPod } from "./testbed.ts";
import { CNI_PATH, OVSPLANE } from "../integration/common.ts";

/** The agent executable (multi-call link). */
export const AGENT = join(REPO_ROOT, "dist/bin/ovsplane-agent");
/** The network name of the agents' conflists. */
export const NET = "podnet";

/** One running agent. */
export interface AgentRun {
  node: SimNode;
  child: ChildProcess;
  log: string;
  confDir: string;
  stateDir: string;
  /** The IPAM data dir of its conflist. */
  ipamDir: string;
}

/** A Node object for the fake API server. */
export const nodeObj = (name: string, ip: string, podCIDR?: string): Record<string, unknown> => ({
  metadata: { name },
  spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
  status: { addresses: [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }] },
});

/** A Pod object bound to a node. */
export const podObj = (namespace: string, name: string, nodeName: string): Record<string, unknown> => ({
  metadata: { name, namespace },
  spec: { nodeName, containers: [{ name: "c", image: "scratch" }] },
});

/** Polls fn every 50 ms until it returns something truthy; throws after ms. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const readJson = (p: string): any => (existsSync(p) ? JSON.parse(readFileSync(p, "utf8")) : undefined);
/** The conflist an agent wrote (undefined before). */
export const conflistOf = (a: AgentRun): any => readJson(join(a.confDir, "10-ovsplane.conflist"));
/** The segments.json an agent wrote (undefined before). */
export const segmentsOf = (a: AgentRun): any => readJson(join(a.stateDir, "segments.json"));
/** The plugin config a runtime would hand ovsplane from an agent's conflist. */
export function pluginConfig(a: AgentRun): Record<string, unknown> {
  const c = conflistOf(a);
  return { cniVersion: c.cniVersion, name: c.name, ...c.plugins[0] };
}

/** GET on an agent's endpoint (127.0.0.1:9109), from inside its node's netns. */
export async function agentHttp(node: SimNode, path: string): Promise<{ code: number; body: string }> {
  const r = await node.exec(["curl", "-s", "-m", "3", "-w", "\n%{http_code}", `http://127.0.0.1:9109${path}`], { allowFail: true });
  const i = r.stdout.lastIndexOf("\n");
  return { code: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

/** The bed: nodes A (198.18.0.1) and B (198.18.0.2), the API server, a temp dir, the agents started. */
export class AgentBed {
  A!: SimNode;
  B!: SimNode;
  api?: ApiServerProcess;
  readonly dir = mkdtempSync("/tmp/ovsp-agent-it-");
  readonly agents: AgentRun[] = [];

  /** Creates both nodes, the outside host with the API server and the given Namespaces. */
  async setup(namespaces: readonly Record<string, unknown>[]): Promise<void> {
    this.A = await createNode({ name: "a", underlayIP: "198.18.0.1" });
    this.B = await createNode({ name: "b", underlayIP: "198.18.0.2" });
    await connectNodes(this.A, this.B);
    const host = await createOutsideHost({ name: "apisrv", address: "198.18.0.200/24" });
    mkdirSync(join(this.dir, "api"));
    this.api = await spawnApiServer({ listen: "198.18.0.200:6443", dir: join(this.dir, "api"), netns: host.netns });
    for (const ns of namespaces) await this.api.upsert("namespaces", ns);
  }

  /** A conflist template for one node (its own OVSDB socket, userspace datapath). */
  template(node: SimNode): Record<string, unknown> {
    return {
      cniVersion: "1.0.0",
      name: NET,
      plugins: [{
        type: "ovsplane", bridge: "br-int", datapathType: "netdev", ovsdbSocket: node.ovsdbSocket, segment: 1, globalSegments: [5],
        ipam: { type: "ovsplane-ipam", routes: [{ dst: "0.0.0.0/0" }], dataDir: join(this.dir, `ipam-${node.name}`) },
        logFile: join(this.dir, `cni-${node.name}.log`),
      }],
    };
  }

  /** Starts the agent inside the node's netns with its OVS env (extra flags appended); its stderr goes to a file. */
  startAgent(node: SimNode, extra: readonly string[] = []): AgentRun {
    const { dir } = this;
    const confDir = join(dir, `net.d-${node.name}`);
    const stateDir = join(dir, `state-${node.name}`);
    const tmpl = join(dir, `template-${node.name}.json`);
    writeFileSync(tmpl, JSON.stringify(this.template(node)));
    const log = join(dir, `agent-${node.name}.log`);
    const argv = [AGENT, "--kubeconfig", this.api!.kubeconfig, "--node-name", node.name, "--conf-file", tmpl, "--cni-conf-dir", confDir, "--state-dir", stateDir, "--listen", "127.0.0.1:9109", ...extra];
    // `ip netns exec` execs the agent in place: the child's pid is the agent's.
    const child = spawn("ip", ["netns", "exec", node.netns, ...argv], { env: { ...process.env, ...node.env }, stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => writeFileSync(log, d, { flag: "a" }));
    const a = { node, child, log, confDir, stateDir, ipamDir: join(dir, `ipam-${node.name}`) };
    this.agents.push(a);
    return a;
  }

  /**
   * Nodes a and b in the API (pod ranges 10.244.1.0/24 and 10.244.2.0/24), an agent started on each (extra flags),
   * each ready with its conflist written.
   */
  async startAgents(extra: readonly string[] = []): Promise<void> {
    await this.api!.upsert("nodes", nodeObj("a", this.A.underlayIP, "10.244.1.0/24"));
    await this.api!.upsert("nodes", nodeObj("b", this.B.underlayIP, "10.244.2.0/24"));
    for (const n of [this.A, this.B]) this.startAgent(n, extra);
    for (const a of this.agents) {
      await waitFor(`${a.node.name}'s /readyz`, async () => (await agentHttp(a.node, "/readyz")).code === 200, 20_000);
      await waitFor(`${a.node.name}'s conflist`, () => conflistOf(a));
    }
  }

  /** ADD of a new pod on node through its agent's conflist as Pod namespace/name, TX offload off: the pod and its IPv4 address. */
  async addPod(node: SimNode, namespace: string, name: string): Promise<{ pod: SimPod; ip: string }> {
    const a = this.agents.find((x) => x.node === node);
    if (!a) throw new Error(`no agent on node ${node.name}`);
    const pod = await createPod(name);
    const args = { IgnoreUnknown: "1", K8S_POD_NAMESPACE: namespace, K8S_POD_NAME: name };
    const r = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID: `ctr-${name}`, netns: pod, args, path: CNI_PATH, config: pluginConfig(a) });
    if (r.code !== 0) throw new Error(`ADD ${name}: ${r.stdout} ${r.stderr}`);
    await pod.txOffloadOff();
    return { pod, ip: String(r.json.ips[0].address).split("/")[0]! };
  }

  /** Stops the agents and the API server, tears the nodes down, prints the agents' logs when show, removes the temp dir. */
  async teardown(show = !!process.env.AGENT_SHOW): Promise<void> {
    for (const a of this.agents.splice(0)) {
      if (a.child.pid && pidAlive(a.child.pid)) await killPid(a.child.pid).catch(() => undefined);
      if (show && existsSync(a.log)) console.log(`--- agent ${a.node.name}\n${readFileSync(a.log, "utf8")}`);
    }
    await this.api?.close().catch(() => undefined);
    await teardownAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
