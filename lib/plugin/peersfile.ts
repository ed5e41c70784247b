// Static peers in a file of their own (`peersFile`): read at the edge, then validated by parseConfig as inline ones.
import { readFileSync } from "node:fs";
import { invalidConfig, messageOf } from "../cni/errors.ts";
import type { NetConf } from "../cni/types.ts";

/**
 * The configuration with the peers of its `peersFile` (a JSON list of `{nodeIP, podCIDR}`) put where
 * inline `peers` go; unchanged without one. A big cluster's peers in a file keep the conflist small:
 * the runtime parses, re-encodes and caches the whole conflist on every call (1,000 inline peers cost
 * libcni ~9 ms an ADD here). Code 7 when the file cannot be read as JSON or the peers are also inline.
 */
export function withPeersFile(conf: NetConf): NetConf {
  const file = conf.peersFile;
  if (file === undefined) return conf;
  if (typeof file !== "string" || !file.startsWith("/")) throw invalidConfig("peersFile", file, "must be an absolute path");
  if (conf.peers !== undefined) throw invalidConfig("peersFile", file, "not with peers: give the static peers inline or in a file, not both");
  let peers: unknown;
  try {
    peers = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw invalidConfig("peersFile", file, `cannot read it as JSON: ${messageOf(e)}`, e);
  }
  return { ...conf, peers };
}
