// The node's underlay facts: tunnel source address and the MTU pods get (one `ip -j` at most).
import { readFileSync } from "node:fs";
import { invalidConfig } from "../cni/errors.ts";
import { ipJson } from "./netns.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";

/** VXLAN over IPv4 costs 50 bytes. */
export const VXLAN_OVERHEAD = 50;

interface IpAddr {
  ifname: string;
  mtu: number;
  addr_info?: { family: string; local: string }[];
}

/** The interface of the IPv4 default route, read from /proc/net/route (no subprocess). */
export function defaultRouteInterface(): string | undefined {
  let text = "";
  try {
    text = readFileSync("/proc/net/route", "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 7 && f[1] === "00000000" && f[7] === "00000000") return f[0];
  }
  return undefined;
}

/** Tunnel local IP and pod MTU: from the config, else from the default-route (or localIP's) interface. */
export async function underlay(cfg: OvsplaneConfig): Promise<{ localIP: string; mtu: number }> {
  if (cfg.tunnel.localIP && cfg.mtu) return { localIP: cfg.tunnel.localIP, mtu: cfg.mtu };
  const links = await ipJson<IpAddr[]>(["-4", "addr", "show"]);
  let link: IpAddr | undefined;
  if (cfg.tunnel.localIP) {
    link = links.find((l) => l.addr_info?.some((a) => a.local === cfg.tunnel.localIP));
    if (!link) throw invalidConfig("tunnel.localIP", cfg.tunnel.localIP, "no interface of this node holds that address");
  } else {
    const dev = defaultRouteInterface();
    link = links.find((l) => l.ifname === dev);
    if (!dev || !link?.addr_info?.length) {
      throw invalidConfig("tunnel.localIP", undefined, "not given and the node has no IPv4 default route to take it from");
    }
  }
  const localIP = cfg.tunnel.localIP ?? link.addr_info![0]!.local;
  return { localIP, mtu: cfg.mtu ?? link.mtu - VXLAN_OVERHEAD };
}
