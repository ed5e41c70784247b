// Pure: the doctor's checks, each a verdict with a fix hint, from facts gathered once (conf dir, sysctl, OVS, links, residue).
import { basename } from "node:path";
import { isClean, type Residue } from "./residue.ts";

/** A check's verdict. */
export const Verdict = { Ok: "ok", Warn: "warn", Fail: "fail" } as const;
/** One of Verdict's values. */
export type VerdictValue = (typeof Verdict)[keyof typeof Verdict];

/** One finding: what was checked, the verdict, what was seen, and how to fix it. */
export interface Finding {
  check: string;
  verdict: VerdictValue;
  detail: string;
  fix?: string;
}

const ok = (check: string, detail: string): Finding => ({ check, verdict: Verdict.Ok, detail });
const fail = (check: string, detail: string, fix: string): Finding => ({ check, verdict: Verdict.Fail, detail, fix });
const warn = (check: string, detail: string, fix?: string): Finding => ({ check, verdict: Verdict.Warn, detail, ...(fix ? { fix } : {}) });

/** True when no finding failed. */
export function healthy(findings: readonly Finding[]): boolean {
  return findings.every((f) => f.verdict !== Verdict.Fail);
}

/** The conf dir: readable, every ovsplane config valid, and the file a runtime picks (lexically first) is ours. */
export function confFindings(confDir: string, files: readonly string[], problems: readonly { file: string; why: string }[], networkFiles: readonly string[]): Finding[] {
  const out: Finding[] = problems.map((p) => fail("conflist", `${p.file}: ${p.why}`, "fix the file (ovsplanectl install --force rewrites ours)"));
  if (!networkFiles.length) {
    if (!problems.length) out.push(fail("conflist", `no ovsplane network in ${confDir}`, "ovsplanectl install"));
    return out;
  }
  const first = files[0];
  const ours = new Set(networkFiles.map((f) => basename(f)));
  if (first && !ours.has(first)) {
    out.push(fail("conflist", `${first} comes first in ${confDir}: runtimes use it, not ${[...ours].join(", ")}`, `rename ours to sort first (e.g. 00-…) or remove ${first}`));
  } else if (!problems.length) {
    out.push(ok("conflist", `${first} is valid and first in ${confDir}`));
  }
  return out;
}

/** IPv4 forwarding must be on (node ↔ pods through the gateway, Services). */
export function forwardFinding(value: string | undefined): Finding {
  if (value?.trim() === "1") return ok("ip_forward", "net.ipv4.ip_forward = 1");
  return fail("ip_forward", `net.ipv4.ip_forward = ${value?.trim() ?? "unreadable"}`, "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d)");
}

/** What doctor knows of a network's OVS. */
export interface OvsFacts {
  network: string;
  bridge: string;
  configuredDatapath: string;
  ovsdb: { ok: boolean; error?: string };
  vswitchd: { ok: boolean; error?: string };
  exists: boolean;
  datapathType?: string;
  /** /sys/module/openvswitch exists (the kernel datapath is loaded). */
  kernelModule: boolean;
}

/** Both daemons answer, and the datapath the bridge uses is available. */
export function ovsFindings(f: OvsFacts): Finding[] {
  const c = `ovs ${f.bridge}`;
  if (!f.ovsdb.ok) return [fail(c, `ovsdb-server does not answer: ${f.ovsdb.error ?? ""}`, "start Open vSwitch (systemctl start openvswitch-switch)")];
  const out: Finding[] = [];
  if (!f.vswitchd.ok) out.push(fail(c, `ovs-vswitchd does not serve bridge ${f.bridge}: ${f.vswitchd.error ?? ""}`, "start ovs-vswitchd (systemctl restart openvswitch-switch)"));
  const dp = f.datapathType ?? f.configuredDatapath;
  if (dp === "netdev") out.push(ok(c, "datapath netdev (userspace)"));
  else if (f.kernelModule) out.push(ok(c, "datapath system, kernel module openvswitch loaded"));
  else out.push(fail(c, "datapath system but the openvswitch kernel module is not loaded", "modprobe openvswitch, or datapathType \"netdev\""));
  if (f.exists && f.datapathType && f.datapathType !== f.configuredDatapath) {
    out.push(warn(c, `bridge has datapath ${f.datapathType}, ${f.network} asks for ${f.configuredDatapath}`, "make datapathType match the bridge"));
  }
  if (!f.exists && f.vswitchd.ok) out.push(warn(c, `bridge ${f.bridge} does not exist yet (made by the first ADD)`));
  return out;
}

/** The pod MTU chain: the uplink, the configured or derived pod MTU, each pod's host veth. */
export interface MtuFacts {
  network: string;
  uplink?: { ifname: string; mtu: number };
  uplinkError?: string;
  configured?: number;
  /** Host veths of the network's pods with their MTU. */
  veths: { ifname: string; pod: string; mtu?: number }[];
}

/** VXLAN over IPv4 costs this much of the uplink MTU. */
export const VXLAN_OVERHEAD = 50;

/** Pods' host veths carry the pod MTU, which fits the uplink's MTU minus the VXLAN overhead. */
export function mtuFindings(f: MtuFacts): Finding[] {
  const c = `mtu ${f.network}`;
  if (!f.uplink) return [fail(c, `cannot find the uplink: ${f.uplinkError ?? "unknown"}`, "set tunnel.localIP to an address of the node")];
  const room = f.uplink.mtu - VXLAN_OVERHEAD;
  const want = f.configured ?? room;
  const out: Finding[] = [];
  if (want > room) out.push(fail(c, `pod MTU ${want} > ${f.uplink.ifname} MTU ${f.uplink.mtu} − ${VXLAN_OVERHEAD}: tunnelled packets will be dropped`, `set "mtu": ${room} (or less) and recreate the pods`));
  const wrong = f.veths.filter((v) => v.mtu !== want);
  for (const v of wrong) out.push(fail(c, `host veth ${v.ifname} (${v.pod}) has MTU ${v.mtu ?? "?"}, pods get ${want}`, `ip link set ${v.ifname} mtu ${want} (and the pod's end), or recreate the pod`));
  if (!out.length) out.push(ok(c, `${f.uplink.ifname} ${f.uplink.mtu} → pods ${want} (${f.veths.length} host veth(s) agree)`));
  return out;
}

/** TX checksum offload of one pod interface, read in its netns. */
export interface OffloadFact {
  pod: string;
  ifname: string;
  netns: string;
  tx?: "on" | "off";
  error?: string;
}

/** On the userspace datapath every pod interface needs TX checksum offload off (else TCP hangs while ping works). */
export function offloadFindings(network: string, datapath: string, facts: readonly OffloadFact[]): Finding[] {
  const c = `tx offload ${network}`;
  if (datapath !== "netdev") return [];
  const out: Finding[] = [];
  for (const f of facts) {
    if (f.tx === "on") out.push(fail(c, `${f.pod}: ${f.ifname} has tx-checksumming on (userspace datapath)`, `nsenter --net=${f.netns} ethtool -K ${f.ifname} tx off`));
    else if (f.tx === undefined) out.push(warn(c, `${f.pod}: cannot read ${f.ifname}'s offloads: ${f.error ?? "unknown"}`));
  }
  if (!out.length) out.push(ok(c, `tx-checksumming off on ${facts.length} pod interface(s)`));
  return out;
}

/** Residue is a failure, each kind with `ovsplanectl gc` as the fix. */
export function residueFindings(r: Residue): Finding[] {
  const c = `residue ${r.network}`;
  if (isClean(r)) return [ok(c, "no port without veth, veth without port, stray lease or orphan pod flow")];
  const fix = "ovsplanectl gc (--dry-run shows what goes)";
  return [
    ...r.ports.map((p) => fail(c, `port ${p.name}${p.attachment ? ` (${p.attachment})` : ""}: ${p.why}`, fix)),
    ...r.veths.map((v) => fail(c, `veth ${v.ifname} (${v.attachment}) has no port`, fix)),
    ...r.leases.map((l) => fail(c, `lease ${l.ip}${l.owner ? ` of ${l.owner}` : " (empty)"} has no attachment`, fix)),
    ...r.flows.map((f) => fail(c, `${f.count} pod flow(s) of id ${f.id} have no port`, fix)),
  ];
}

/** One live pod's flows compared with what the builders make for it. */
export interface PodFlowsFact {
  pod: string;
  want: number;
  have: number;
  missing: number;
  unexpected: number;
}

/** Every live pod has exactly its flows (a missing one cuts the pod off; only ADD, or the agent, writes them). */
export function podFlowFindings(network: string, vswitchdOk: boolean, facts: readonly PodFlowsFact[]): Finding[] {
  const c = `pod flows ${network}`;
  if (!vswitchdOk) return [];
  const bad = facts.filter((f) => f.missing || f.unexpected);
  const out = bad.map((f) =>
    fail(c, `${f.pod}: ${f.have} of ${f.want} flows${f.missing ? `, ${f.missing} missing` : ""}${f.unexpected ? `, ${f.unexpected} unexpected` : ""}`, "recreate the pod (CNI DEL + ADD; kubectl delete pod) to rewrite its flows"),
  );
  return out.length ? out : [ok(c, `${facts.length} pod(s) with all their flows`)];
}
