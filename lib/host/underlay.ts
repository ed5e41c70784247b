// The node's underlay facts: tunnel source address and the MTU pods get (one link and address dump at most).
import { invalidConfig } from "../cni/errors.ts";
import { links as linkOps } from "./links.ts";
import { procRoutes } from "./routes.ts";
import type { OvsplaneConfig } from "../plugin/config.ts";

/** VXLAN over IPv4 costs 50 bytes. */
export const VXLAN_OVERHEAD = 50;

/** The interface of the first IPv4 default route /proc/net/route lists. */
export function defaultRouteInterface(): string | undefined {
  return procRoutes().find((r) => r.dst === "0.0.0.0/0")?.dev;
}

/** Tunnel local IP and pod MTU: from the config, else from the default-route (or localIP's) interface. */
export async function underlay(cfg: OvsplaneConfig): Promise<{ localIP: string; mtu: number }> {
  if (cfg.tunnel.localIP && cfg.mtu) return { localIP: cfg.tunnel.localIP, mtu: cfg.mtu };
  const links = await (await linkOps()).ipv4Links();
  let link: (typeof links)[number] | undefined;
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
