// Shared pieces of the ovsplane integration tests: executables, configs, pod attach helpers.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { podFlows } from "../../lib/dataplane/builders.ts";
import { connectNodes, createNode, createPod, runPlugin, REPO_ROOT, type PluginResult, type SimNode, type SimPod } from "../harness/testbed.ts";

/** The shipped executables (built by `make build`). */
export const BIN_DIR = join(REPO_ROOT, "dist/bin");
export const OVSPLANE = join(BIN_DIR, "ovsplane");
export const OVSPLANE_IPAM = join(BIN_DIR, "ovsplane-ipam");
/** Debian's reference plugins. */
export const REF_DIR = "/usr/lib/cni";
/** CNI_PATH with ours first, then the reference plugins. */
export const CNI_PATH = [BIN_DIR, REF_DIR];

/** Options of netConf. */
export interface ConfOptions {
  name?: string;
  cniVersion?: string;
  podCIDR: string;
  peers?: { nodeIP: string; podCIDR: string }[];
  segment?: number;
  ipamType?: string;
  dataDir: string;
  bridge?: string;
  extra?: Record<string, unknown>;
}

/** An ovsplane network config for a simulated node (userspace datapath, explicit underlay). */
export function netConf(node: SimNode, o: ConfOptions): Record<string, unknown> {
  return {
    cniVersion: o.cniVersion ?? "1.1.0",
    name: o.name ?? "podnet",
    type: "ovsplane",
    bridge: o.bridge ?? "br-int",
    datapathType: "netdev",
    ovsdbSocket: node.ovsdbSocket,
    segment: o.segment ?? 1,
    tunnel: { localIP: node.underlayIP },
    peers: o.peers ?? [],
    ipam: {
      type: o.ipamType ?? "ovsplane-ipam",
      ranges: [[{ subnet: o.podCIDR }]],
      routes: [{ dst: "0.0.0.0/0" }],
      dataDir: o.dataDir,
    },
    logFile: join(o.dataDir, "cni.log"),
    ...o.extra,
  };
}

/**
 * Nodes a (198.18.0.1, pods 10.244.1.0/24) and b (198.18.0.2, pods 10.244.2.0/24) on the underlay, each the
 * other's static peer: a's inline (`peers`), b's in a file of its own (`peersFile`), so both forms are used.
 */
export async function twoNodes(dataDirs: readonly [string, string]): Promise<{ A: SimNode; B: SimNode; confA: Record<string, unknown>; confB: Record<string, unknown> }> {
  const A = await createNode({ name: "a", underlayIP: "198.18.0.1" });
  const B = await createNode({ name: "b", underlayIP: "198.18.0.2" });
  await connectNodes(A, B);
  const confA = netConf(A, { podCIDR: "10.244.1.0/24", peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }], dataDir: dataDirs[0] });
  mkdirSync(dataDirs[1], { recursive: true });
  const peersFile = join(dataDirs[1], "peers.json");
  writeFileSync(peersFile, JSON.stringify([{ nodeIP: "198.18.0.1", podCIDR: "10.244.1.0/24" }]));
  const confB = netConf(B, { podCIDR: "10.244.2.0/24", dataDir: dataDirs[1], extra: { peers: undefined, peersFile } });
  return { A, B, confA, confB };
}

/** A temporary IPAM data dir; remove with rmTemp. */
export function tempDir(prefix = "ovsp-ipam-"): string {
  return mkdtempSync(join("/tmp", prefix));
}

/** Removes a temporary dir, ignoring errors. */
export function rmTemp(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** A pod attached by ovsplane ADD. */
export interface AttachedPod {
  pod: SimPod;
  containerID: string;
  ip: string;
  result: PluginResult;
}

/** Creates a pod netns and runs ADD for it; throws with the plugin's output if ADD fails. */
export async function addPod(node: SimNode, conf: Record<string, unknown>, name: string, segment?: number): Promise<AttachedPod> {
  const pod = await createPod(name);
  const containerID = `ctr-${name}`;
  const args: Record<string, string> = { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "default", K8S_POD_NAME: name };
  if (segment !== undefined) args.OVSPLANE_SEGMENT = String(segment);
  const result = await runPlugin({ bin: OVSPLANE, node, command: "ADD", containerID, netns: pod, args, path: CNI_PATH, config: conf });
  if (result.code !== 0) throw new Error(`ADD ${name} failed: ${result.stdout} ${result.stderr}`);
  const ip = String(result.json.ips[0].address).split("/")[0]!;
  return { pod, containerID, ip, result };
}

/** Runs DEL for an attached pod. */
export function delPod(node: SimNode, conf: Record<string, unknown>, p: AttachedPod): Promise<PluginResult> {
  return runPlugin({ bin: OVSPLANE, node, command: "DEL", containerID: p.containerID, netns: p.pod, args: "IgnoreUnknown=1", path: CNI_PATH, config: conf });
}

/** Flows each local pod owns: whatever the builders make for one (a fixed number per pod, never per remote pod). */
export const POD_FLOWS = podFlows({ id: 1n, port: 5, ip: "10.244.1.5", mac: "0a:58:0a:f4:01:05", segment: 100 }, { gateway: 2, gatewayMAC: "0a:58:0a:f4:01:01" }).length;

/** Flows on a node's bridge whose cookie is an ovsplane pod cookie (kind 4). */
export async function podFlowLines(node: SimNode, bridge = "br-int"): Promise<string[]> {
  const out = await node.ofctl("--no-stats", "dump-flows", node.ofSocket(bridge), "cookie=0x6f76040000000000/0xffffff0000000000");
  return out.split("\n").filter((l) => l.includes("cookie="));
}
