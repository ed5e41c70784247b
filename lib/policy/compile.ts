// NetworkPolicy to OpenFlow, pure: the policy flows of one node's pods, one conjunctive match per rule (peers x pods x ports as a sum).
import { act, flowKey, IpProto, on, match, type Action, type ConjunctionAction, type Flow, type Match } from "../ovs/flow.ts";
import { cookie, CookieKind, CT_ZONE, PolicyFlag, PolicyPriority, Reg, Table } from "../dataplane/pipeline.ts";
import {
  hasNamedPort, ipBlockPrefixes, peerPods, podsByNamespace, policySelects, policyTypes, rangeMasks, resolvePort, rulesOf, type Direction, type NamespaceInfo, type PodInfo, type Policy, type PolicyRule, type PortRange,
} from "./model.ts";

/** A pod attachment on this node: its OpenFlow port and address, and which Pod it is. */
export interface LocalPod {
  ofport: number;
  ip: string;
  namespace: string;
  name: string;
}

/** What the policy flows of a node are computed from. */
export interface PolicyInput {
  policies: readonly Policy[];
  /** Every pod of the cluster (peers; labels and named ports of the local ones). */
  pods: readonly PodInfo[];
  namespaces: readonly NamespaceInfo[];
  local: readonly LocalPod[];
}

/** One conjunction (or allow-all) of a rule: which policy rule it is, for trace and metrics. */
export interface RuleRef {
  /** conj_id, 0 for a rule that allows everything to or from its pods (no conjunction). */
  conjId: number;
  policy: string;
  direction: Direction;
  /** Index of the rule in the policy's ingress or egress list. */
  rule: number;
}

/** The compiled policy flows of a node. */
export interface PolicyFlows {
  flows: Flow[];
  rules: RuleRef[];
  /** Each local pod some policy selects (`namespace/name`) with those policies (`namespace/name`), sorted. */
  selected: Map<string, string[]>;
}

/** Cookie of the conjunctive clause flows rules share. */
export const POLICY_SHARED_COOKIE = cookie(CookieKind.Policy, 0n);

/** Cookie of one policy's verdict flows (conj_id and allow-all). */
export function policyCookie(namespace: string, name: string): bigint {
  return cookie(CookieKind.Policy, (1n << 32n) | BigInt(fnv32(`${namespace}/${name}`)));
}

/** Cookie of one selected pod's policy flows (conntrack lookup, default drop, commit). */
export function policyPodCookie(ofport: number): bigint {
  return cookie(CookieKind.Policy, (2n << 32n) | BigInt(ofport));
}

/** FNV-1a, 32 bits. */
export function fnv32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

const PROTO = { TCP: IpProto.TCP, UDP: IpProto.UDP, SCTP: IpProto.SCTP } as const;

/** The matches of one resolved port entry (a range as aligned blocks). */
function portMatches(r: PortRange): Match[] {
  const proto = PROTO[r.protocol];
  if (r.from === undefined) return [on.proto(proto)];
  return rangeMasks(r.from, r.to ?? r.from).map((b) => on.dstPort(proto, b.value, b.mask));
}

/** Port matches of entries resolved for one destination pod (undefined pod: numbers only), keyed by what they resolved to. */
function resolvedMatches(rule: PolicyRule, pod: PodInfo | undefined): { key: string; matches: Match[] } {
  const ranges = (rule.ports ?? []).flatMap((p) => {
    const r = resolvePort(p, pod);
    return r ? [r] : [];
  });
  return { key: ranges.map((r) => `${r.protocol}:${r.from ?? ""}-${r.to ?? ""}`).sort().join(","), matches: ranges.flatMap(portMatches) };
}

/** One conjunction to build: targets (local ports), peers (prefixes; undefined: any), ports (undefined: any). */
interface Group {
  key: string;
  ref: Omit<RuleRef, "conjId">;
  cookie: bigint;
  targets: number[];
  peers?: string[];
  ports?: Match[];
}

const DIR = {
  Ingress: {
    table: Table.IngressRule,
    target: (port: number) => match(on.ip(), on.reg(Reg.DstPort, port)),
    peer: (cidr: string) => on.ipSrc(cidr),
    allow: (): Action[] => [act.ctCommitOnly(CT_ZONE), act.goto(Table.SegmentCheck)],
  },
  Egress: {
    table: Table.EgressRule,
    target: (port: number) => match(on.inPort(port), on.ip()),
    peer: (cidr: string) => on.ipDst(cidr),
    allow: (): Action[] => [act.load({ field: `reg${Reg.PolicyFlags}` as "reg3", ofs: 0, nbits: 1 }, PolicyFlag.Commit), act.goto(Table.L3Forwarding)],
  },
} as const;


/** The conjunctions of one rule of a policy for its local pods. */
function ruleGroups(p: Policy, d: Direction, index: number, rule: PolicyRule, targets: readonly { port: number; pod: PodInfo }[], cluster: Cluster): Group[] {
  const base = { ref: { policy: `${p.namespace}/${p.name}`, direction: d, rule: index }, cookie: policyCookie(p.namespace, p.name) };
  const id = `${d}|${p.namespace}/${p.name}|${index}`;
  const anyPeer = !rule.peers?.length;
  const anyPort = !rule.ports?.length;
  const podPeers: PodInfo[] = [];
  const blocks: string[] = [];
  for (const peer of rule.peers ?? []) {
    if (peer.ipBlock) blocks.push(...ipBlockPrefixes(peer.ipBlock.cidr, peer.ipBlock.except));
    else podPeers.push(...peerPods(peer, p.namespace, cluster.byNs, cluster.nsLabels).filter((x) => x.ip));
  }
  const ports = targets.map((t) => t.port);
  const prefixes = [...blocks, ...podPeers.map((x) => `${x.ip}/32`)];
  if (anyPort || !hasNamedPort(rule.ports)) {
    const portList = anyPort ? undefined : resolvedMatches(rule, undefined).matches;
    return [{ ...base, key: id, targets: ports, ...(anyPeer ? {} : { peers: prefixes }), ...(portList ? { ports: portList } : {}) }];
  }
  const groups = new Map<string, Group>();
  const add = (k: string, make: () => Group, extend: (g: Group) => void) => {
    const g = groups.get(k) ?? make();
    groups.set(k, g);
    extend(g);
  };
  if (d === "Ingress") {
    // Named ports resolve on the destination: group this node's pods by what their names resolve to.
    for (const t of targets) {
      const { key: k, matches: ms } = resolvedMatches(rule, t.pod);
      if (!ms.length) continue;
      add(k, () => ({ ...base, key: `${id}|${k}`, targets: [], ...(anyPeer ? {} : { peers: prefixes }), ports: ms }), (g) => g.targets.push(t.port));
    }
  } else {
    // Egress: they resolve on each destination pod; an address that is no pod gets the numbered ports only.
    const numbered = resolvedMatches(rule, undefined).matches;
    if (numbered.length && (anyPeer || blocks.length)) {
      groups.set("", { ...base, key: `${id}|`, targets: ports, ...(anyPeer ? {} : { peers: blocks }), ports: numbered });
    }
    for (const x of anyPeer ? cluster.pods.filter((q) => q.ip) : podPeers) {
      const { key: k, matches: ms } = resolvedMatches(rule, x);
      if (!ms.length) continue;
      add(`p${k}`, () => ({ ...base, key: `${id}|p${k}`, targets: ports, peers: [], ports: ms }), (g) => g.peers!.push(`${x.ip}/32`));
    }
  }
  return [...groups.values()];
}

/** One item of a conjunction's dimension: a key unique in its table, and its match. */
interface Item {
  k: string;
  m: () => Match;
}

interface Cluster {
  pods: readonly PodInfo[];
  byNs: ReadonlyMap<string, readonly PodInfo[]>;
  nsLabels: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

/** Conjunction ids: a hash of each group's key, the next free one on a collision (keys in sorted order). */
function assignIds(groups: readonly Group[]): Map<string, number> {
  const ids = new Map<string, number>();
  const used = new Set<number>();
  for (const k of groups.map((g) => g.key).sort()) {
    let id = fnv32(k) || 1;
    while (used.has(id)) id = (id + 1) >>> 0 || 1;
    used.add(id);
    ids.set(k, id);
  }
  return ids;
}

/**
 * The policy flows of this node's pods. Per selected pod: its packets looked up in conntrack (EgressTrack),
 * a drop below the rules of each direction it is isolated in, a commit of what reaches it when it is not.
 * Per rule: one conjunction whose dimensions are the local pods, the peers' prefixes and the ports (each a
 * flow per item, shared by every rule that names it), so flows grow with the sum of the sets.
 */
export function compilePolicies(input: PolicyInput): PolicyFlows {
  const cluster: Cluster = { pods: input.pods, byNs: podsByNamespace(input.pods), nsLabels: new Map(input.namespaces.map((n) => [n.name, n.labels])) };
  const podByKey = new Map(input.pods.map((x) => [`${x.namespace}/${x.name}`, x]));
  const local = input.local.filter((l) => l.ofport > 0).map((l) => ({ ...l, pod: podByKey.get(`${l.namespace}/${l.name}`) })).filter((l) => l.pod);
  const policies = [...input.policies].sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  const selected = new Map<string, string[]>();
  const isolated = { Ingress: new Set<number>(), Egress: new Set<number>() };
  const groups: { d: Direction; g: Group }[] = [];
  for (const p of policies) {
    const targets = local.filter((l) => policySelects(p, l.pod!)).map((l) => ({ port: l.ofport, pod: { ...l.pod!, ip: l.ip } }));
    if (!targets.length) continue;
    for (const l of local) if (policySelects(p, l.pod!)) selected.set(`${l.namespace}/${l.name}`, [...(selected.get(`${l.namespace}/${l.name}`) ?? []), `${p.namespace}/${p.name}`]);
    for (const d of ["Ingress", "Egress"] as const) {
      if (!policyTypes(p).includes(d)) continue;
      for (const t of targets) isolated[d].add(t.port);
      rulesOf(p, d).forEach((rule, i) => {
        for (const g of ruleGroups(p, d, i, rule, targets, cluster)) if (g.targets.length && (!g.peers || g.peers.length) && (!g.ports || g.ports.length)) groups.push({ d, g });
      });
    }
  }
  const ids = assignIds(groups.map((x) => x.g));
  const hard = new Map<string, Flow>();
  const clauses = new Map<string, { flow: Omit<Flow, "actions">; conj: ConjunctionAction[] }>();
  const rules: RuleRef[] = [];
  const addHard = (f: Flow) => void (hard.has(flowKey(f)) || hard.set(flowKey(f), f));
  for (const { d, g } of groups) {
    const D = DIR[d];
    // Each item of a dimension with a key of its own (a port number, a prefix): no match is rendered twice.
    const dims: Item[][] = [
      g.targets.map((p) => ({ k: `t${p}`, m: () => D.target(p) })),
      ...(g.peers ? [g.peers.map((c) => ({ k: `a${c}`, m: () => D.peer(c) }))] : []),
      ...(g.ports ? [g.ports.map((m) => ({ k: `o${flowKey({ table: 0, priority: 0, match: m })}`, m: () => m }))] : []),
    ];
    if (dims.length === 1) {
      rules.push({ conjId: 0, ...g.ref });
      for (const it of dims[0]!) addHard({ table: D.table, priority: PolicyPriority.AllowAll, cookie: g.cookie, match: it.m(), actions: D.allow() });
      continue;
    }
    const id = ids.get(g.key)!;
    rules.push({ conjId: id, ...g.ref });
    addHard({ table: D.table, priority: PolicyPriority.Rule, cookie: g.cookie, match: match(on.ip(), on.conjId(id)), actions: D.allow() });
    dims.forEach((items, k) => {
      const seen = new Set<string>();
      for (const it of items) {
        const fk = `${D.table}|${it.k}`;
        if (seen.has(fk)) continue;
        seen.add(fk);
        const c = clauses.get(fk) ?? { flow: { table: D.table, priority: PolicyPriority.Rule, cookie: POLICY_SHARED_COOKIE, match: it.m() }, conj: [] };
        clauses.set(fk, c);
        c.conj.push(act.conjunction(id, k + 1, dims.length) as ConjunctionAction);
      }
    });
  }
  const perPod: Flow[] = [];
  for (const l of local) {
    if (!selected.has(`${l.namespace}/${l.name}`)) continue;
    const c = policyPodCookie(l.ofport);
    perPod.push({ table: Table.EgressTrack, priority: PolicyPriority.Rule, cookie: c, match: DIR.Egress.target(l.ofport), actions: [act.ctLookup(CT_ZONE, Table.EgressRule)] });
    if (isolated.Egress.has(l.ofport)) perPod.push({ table: Table.EgressRule, priority: PolicyPriority.Default, cookie: c, match: DIR.Egress.target(l.ofport), actions: [] });
    if (isolated.Ingress.has(l.ofport)) perPod.push({ table: Table.IngressRule, priority: PolicyPriority.Default, cookie: c, match: DIR.Ingress.target(l.ofport), actions: [] });
    else perPod.push({ table: Table.IngressRule, priority: PolicyPriority.Commit, cookie: c, match: DIR.Ingress.target(l.ofport), actions: DIR.Ingress.allow() });
  }
  const shared = [...clauses.values()].map((c) => ({ ...c.flow, actions: c.conj.sort((a, b) => a.id - b.id || a.clause - b.clause) }));
  return { flows: [...perPod, ...hard.values(), ...shared], rules, selected: new Map([...selected].sort(([a], [b]) => (a < b ? -1 : 1))) };
}
