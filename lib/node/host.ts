// The node's host state of a network (gateway address, routes to peers, masquerade, raw guard): applied when it changed.
import { run, trace } from "../host/exec.ts";
import { procHoldsRoutes, procRoutes } from "../host/routes.ts";
import { links } from "../host/links.ts";
import type { OvsdbClient } from "../ovs/ovsdb.ts";
import {
  hostFingerprint, hostFingerprintParts, iptablesApply, iptablesRemove, markerRoutes, ROUTE_PROTO, routedRanges, routeLines, routeMetric, staleRouteLines, type HostSpec,
} from "../dataplane/hoststate.ts";
import { GATEWAY_PORT } from "../dataplane/names.ts";
import { cidrContains } from "../net/ip.ts";
import { setBridgeId } from "./bridge.ts";

/** The bridge external_id that records the fingerprint a network's host state was applied with. */
export function hostKey(network: string): string {
  return `ovsplane-host-${network}`;
}

/**
 * True when the network's host state was applied with this spec: the fingerprint recorded on the
 * bridge matches, and the kernel still holds the marker routes (they vanish with a reboot or a new
 * netns, where OVSDB's record survives).
 */
export function isApplied(spec: HostSpec, ids: Readonly<Record<string, string>>): boolean {
  if (ids[hostKey(spec.network)] !== hostFingerprint(spec)) return false;
  return procHoldsRoutes(GATEWAY_PORT, routeMetric(spec.netId), markerRoutes(spec));
}

/**
 * Brings a network's host state to the spec, rewriting only what changed since `recorded` (the
 * fingerprint on the bridge, when the caller read it): masquerade and raw guard in one
 * `iptables-restore --noflush` (our chains rewritten whole, jumps added where missing) unless their
 * part of the fingerprint is unchanged and the kernel still holds the marker routes; then one
 * `ip -batch` for the gateway address, the marker routes and the peer routes — all of them (stale ones
 * of this network removed) when the gateway part changed or is unknown, else only the peer routes that
 * were added or removed (found in /proc/net/route by device and metric). Records the fingerprint on the
 * bridge. Callers hold the node lock.
 */
export async function applyHostState(c: OvsdbClient, bridge: string, spec: HostSpec, recorded?: string): Promise<void> {
  const [ipt, gw] = (recorded ?? "").split("-");
  const want = hostFingerprintParts(spec);
  const ours = procRoutes().filter((r) => r.dev === GATEWAY_PORT && r.metric === routeMetric(spec.netId)).map((r) => r.dst);
  const kernelHas = markerRoutes(spec).every((d) => ours.includes(d));
  if (!kernelHas || ipt !== want.iptables) {
    const save = (await run(["iptables-save"])).stdout;
    await run(["iptables-restore", "-w", "--noflush"], { input: iptablesApply(spec, save) });
  } else trace(`iptables of ${spec.network} unchanged`);
  const routed = routedRanges(spec);
  const wanted = [...routed, ...markerRoutes(spec)];
  if (!kernelHas || gw !== want.gateway) {
    const kernel = await links();
    const routes = await kernel.routesByProtocol(ROUTE_PROTO);
    await kernel.hostBatch([...staleRouteLines(routes, spec.netId, wanted), ...routeLines(spec, routed)]);
  } else {
    const have = new Set(ours);
    const stale = staleRouteLines(ours.map((dst) => ({ dst, dev: GATEWAY_PORT, metric: routeMetric(spec.netId) })), spec.netId, wanted);
    const missing = routed.filter((d) => !have.has(d));
    const lines = [...stale, ...routeLines(spec, missing)];
    trace(`routes of ${spec.network}: ${stale.length} removed, ${missing.length} added`);
    await (await links()).hostBatch(lines);
  }
  await setBridgeId(c, bridge, hostKey(spec.network), hostFingerprint(spec));
  trace(`host state of ${spec.network} applied`);
}

/** Options of removeHostState. */
export interface RemoveHostOptions {
  bridge: string;
  network: string;
  netId: bigint;
  /** The network's pod ranges: gateway addresses inside them are removed. */
  podCIDRs: readonly string[];
  /** Also remove the node's raw guard (no ovsplane pod is left on the node). */
  raw: boolean;
}

/** Removes a network's host state (routes, gateway addresses, masquerade) when its last pod leaves the node. */
export async function removeHostState(c: OvsdbClient, o: RemoveHostOptions): Promise<void> {
  const save = (await run(["iptables-save"])).stdout;
  const text = iptablesRemove(o.network, save, o.raw);
  if (text) await run(["iptables-restore", "-w", "--noflush"], { input: text });
  const kernel = await links();
  const routes = await kernel.routesByProtocol(ROUTE_PROTO);
  const gw = await kernel.interfaceOf(GATEWAY_PORT); // no gateway port: no address to remove
  const mine = (gw?.addr_info ?? []).filter((a) => a.family === "inet" && o.podCIDRs.some((r) => cidrContains(r, a.local)));
  const lines = [...staleRouteLines(routes, o.netId, []), ...mine.map((a) => `addr del ${a.local}/${a.prefixlen} dev ${GATEWAY_PORT}`)];
  await kernel.hostBatch(lines);
  await setBridgeId(c, o.bridge, hostKey(o.network), undefined);
  trace(`host state of ${o.network} removed`);
}
