// What ovsplanectl reads of a node: the ovsplane networks in the CNI conf dir, and OVS state (ports, flows) per bridge.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { messageOf } from "../cni/errors.ts";
import type { NetConf } from "../cni/types.ts";
import { parseConfig, type OvsplaneConfig } from "../plugin/config.ts";
import { connect } from "../ovs/ovsdb.ts";
import { OpenFlowConnection } from "../ovs/openflow-conn.ts";
import type { FlowEntry } from "../ovs/openflow.ts";
import { listPorts, findPort, type TaggedPort } from "../node/bridge.ts";
import { MAGIC_MASK, COOKIE_MAGIC } from "../dataplane/pipeline.ts";

/** Default CNI configuration directory. */
export const DEFAULT_CONF_DIR = "/etc/cni/net.d";

/** One ovsplane network found in a conflist (or .conf) file, with its plugin config as the runtime would send it. */
export interface NetworkConf {
  /** The file it was found in. */
  file: string;
  /** The plugin's config object as a runtime sends it on stdin (name and cniVersion injected). */
  conf: NetConf;
  cfg: OvsplaneConfig;
}

/** A conf file that could not be used, and why. */
export interface ConfProblem {
  file: string;
  why: string;
}

/**
 * The ovsplane networks of a CNI conf dir, in the order a runtime reads the files (lexical); files
 * that are not JSON or whose ovsplane plugin config is invalid are reported as problems.
 */
export function loadNetworks(confDir: string = DEFAULT_CONF_DIR): { networks: NetworkConf[]; problems: ConfProblem[]; files: string[] } {
  let files: string[] = [];
  try {
    files = readdirSync(confDir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch (e) {
    return { networks: [], problems: [{ file: confDir, why: messageOf(e) }], files };
  }
  const networks: NetworkConf[] = [];
  const problems: ConfProblem[] = [];
  for (const f of files) {
    const file = join(confDir, f);
    let doc: Record<string, any>;
    try {
      doc = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      problems.push({ file, why: `not JSON: ${messageOf(e)}` });
      continue;
    }
    const plugins: Record<string, any>[] = Array.isArray(doc.plugins) ? doc.plugins : [doc];
    for (const p of plugins) {
      if (p?.type !== "ovsplane") continue;
      const conf = { ...p, name: doc.name, cniVersion: doc.cniVersion } as NetConf;
      try {
        networks.push({ file, conf, cfg: parseConfig(conf) });
      } catch (e) {
        problems.push({ file, why: messageOf(e) });
      }
    }
  }
  return { networks, problems, files };
}

/** A pod port of ours with its OpenFlow port number. */
export type PortState = TaggedPort & { ofport?: number };

/** What OVS says about one bridge: reachability of both daemons, the bridge's rows, ovsplane's ports and flows. */
export interface BridgeState {
  bridge: string;
  ovsdb: { ok: boolean; error?: string };
  vswitchd: { ok: boolean; error?: string };
  exists: boolean;
  datapathType?: string;
  /** Every pod port of any ovsplane network on this OVSDB. */
  ports: PortState[];
  /** The shared ports (tunnel, gateway) by name, with their OpenFlow numbers. */
  shared: PortState[];
  /** Every flow with an ovsplane cookie, with counters. */
  flows: FlowEntry[];
}

/** Reads one bridge's state for a network's config; never throws (failures are in the result). */
export async function readBridge(cfg: OvsplaneConfig, timeoutMs = 2000): Promise<BridgeState> {
  const out: BridgeState = { bridge: cfg.bridge, ovsdb: { ok: false }, vswitchd: { ok: false }, exists: false, ports: [], shared: [], flows: [] };
  try {
    const c = await connect(cfg.ovsdbSocket, { timeoutMs });
    try {
      out.ovsdb.ok = true;
      const [br] = await c.transact([{ op: "select", table: "Bridge", where: [["name", "==", cfg.bridge]], columns: ["datapath_type"] }]);
      out.exists = br.rows.length > 0;
      if (out.exists) out.datapathType = String(br.rows[0].datapath_type || "system");
      const ports = await listPorts(c);
      out.ports = await Promise.all(ports.map(async (p) => ({ ...p, ...((await findPort(c, p.name)) ?? {}) })));
      for (const name of ["ovsplane-gw", `ovsp-vxlan${cfg.tunnel.dstPort === 4789 ? "" : cfg.tunnel.dstPort}`.slice(0, 15)]) {
        const p = await findPort(c, name);
        if (p) out.shared.push(p);
      }
    } finally {
      c.close();
    }
  } catch (e) {
    out.ovsdb.error = messageOf(e);
  }
  try {
    const sw = await OpenFlowConnection.connect(cfg.ofSocket, { timeoutMs });
    try {
      out.vswitchd.ok = true;
      out.flows = await sw.dumpFlows({ cookie: COOKIE_MAGIC << 48n, mask: MAGIC_MASK });
    } finally {
      sw.close();
    }
  } catch (e) {
    out.vswitchd.error = messageOf(e);
  }
  return out;
}
