// NetworkPolicy to OpenFlow, pure: the policy flows of one node's pods, one conjunctive match per rule (peers x pods x ports as a sum).
import { act, IpProto, on, match, type Action, type ConjunctionAction, type Flow, type Match } from "../ovs/flow.ts";
import { flowKey } from "../ovs/flow-text.ts";
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

/** One item of a conjunction's dimension: a key unique in its table, and its match (built only once per key). */
interface Item {
  k: string;
  m: () => Match;
}

/** The port items of one resolved port entry (a range as aligned blocks), keyed by protocol and block. */
function portItems(r: PortRange): Item[] {
  const proto = PROTO[r.protocol];
  if (r.from === undefined) return [{ k: `${proto}`, m: () => on.proto(proto) }];
  return rangeMasks(r.from, r.to ?? r.from).map((b) => ({ k: `${proto}:${b.value}/${b.mask}`, m: () => on.dstPort(proto, b.value, b.mask) }));
}

/** Port items of a rule's entries resolved for one destination pod (undefined pod: numbered entries only). */
function resolvedPorts(rule: PolicyRule, pod: PodInfo | undefined): Item[] {
  const out = new Map<string, Item>();
  for (const p of rule.ports ?? []) {
    const r = resolvePort(p, pod);
    if (r) for (const it of portItems(r)) out.set(it.k, it);
  }
  return [...out.values()];
}

/** Items whose matches are both of two items' (an address or a pod with a port). */
function cross(a: readonly Item[], b: readonly Item[]): Item[] {
  return a.flatMap((x) => b.map((y) => ({ k: `${x.k}|${y.k}`, m: () => match(x.m(), y.m()) })));
}

/**
 * One conjunction to build for a rule: its dimensions, the local pods first. A dimension left out matches
 * anything (a rule without peers, without ports); with only the pods' the rule allows them everything.
 */
interface Group {
  key: string;
  ref: Omit<RuleRef, "conjId">;
  cookie: bigint;
  dims: Item[][];
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

/**
 * The conjunction of one rule of a policy for its local pods, or none when it allows nothing here. Named
 * ports resolve on the destination, so they join the dimension of the destination: on ingress each local
 * pod's item carries its own ports; on egress each peer pod's item carries its ports (an address that is
 * no pod, numbered ports only). Either way one conjunction per rule, and the flows stay a sum.
 */
function ruleGroup(p: Policy, d: Direction, index: number, rule: PolicyRule, targets: readonly { port: number; pod: PodInfo }[], cluster: Cluster): Group | undefined {
  const D = DIR[d];
  const anyPeer = !rule.peers?.length;
  const anyPort = !rule.ports?.length;
  const podPeers: PodInfo[] = [];
  const blocks: string[] = [];
  for (const peer of rule.peers ?? []) {
    if (peer.ipBlock) blocks.push(...ipBlockPrefixes(peer.ipBlock.cidr, peer.ipBlock.except));
    else {
      // Policies often name the same peers: resolved once per compile.
      const k = `${peer.namespaceSelector ? "" : p.namespace}|${JSON.stringify(peer)}`;
      let got = cluster.peers.get(k);
      if (!got) cluster.peers.set(k, (got = peerPods(peer, p.namespace, cluster.byNs, cluster.nsLabels).filter((x) => x.ip)));
      podPeers.push(...got);
    }
  }
  const addr = (cidr: string): Item => ({ k: `a${cidr}`, m: () => D.peer(cidr) });
  const target = (port: number): Item => ({ k: `t${port}`, m: () => D.target(port) });
  let dims: Item[][];
  if (anyPort || !hasNamedPort(rule.ports)) {
    const peers = anyPeer ? undefined : [...blocks.map(addr), ...podPeers.map((x) => addr(`${x.ip}/32`))];
    dims = [targets.map((t) => target(t.port)), ...(peers ? [peers] : []), ...(anyPort ? [] : [resolvedPorts(rule, undefined)])];
  } else if (d === "Ingress") {
    const peers = anyPeer ? undefined : [...blocks.map(addr), ...podPeers.map((x) => addr(`${x.ip}/32`))];
    dims = [targets.flatMap((t) => cross([target(t.port)], resolvedPorts(rule, t.pod))), ...(peers ? [peers] : [])];
  } else {
    const numbered = resolvedPorts(rule, undefined);
    const dsts = anyPeer ? cluster.pods.filter((q) => q.ip) : podPeers;
    const peers = [
      ...(anyPeer ? numbered : cross(blocks.map(addr), numbered)),
      ...dsts.flatMap((x) => cross([addr(`${x.ip}/32`)], resolvedPorts(rule, x))),
    ];
    dims = [targets.map((t) => target(t.port)), peers];
  }
  if (dims.some((items) => !items.length)) return undefined;
  return { key: `${d}|${p.namespace}/${p.name}|${index}`, ref: { policy: `${p.namespace}/${p.name}`, direction: d, rule: index }, cookie: policyCookie(p.namespace, p.name), dims };
}

interface Cluster {
  pods: readonly PodInfo[];
  /** Peers already resolved in this compile, by namespace and peer. */
  peers: Map<string, PodInfo[]>;
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
  // A local pod is a peer by its attachment's address (the API may not report it yet).
  const localIp = new Map(input.local.map((l) => [`${l.namespace}/${l.name}`, l.ip]));
  const pods = localIp.size ? input.pods.map((x) => (localIp.has(`${x.namespace}/${x.name}`) && localIp.get(`${x.namespace}/${x.name}`) !== x.ip ? { ...x, ip: localIp.get(`${x.namespace}/${x.name}`)! } : x)) : input.pods;
  const cluster: Cluster = { pods, peers: new Map(), byNs: podsByNamespace(pods), nsLabels: new Map(input.namespaces.map((n) => [n.name, n.labels])) };
  const podByKey = new Map(pods.map((x) => [`${x.namespace}/${x.name}`, x]));
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
        const g = ruleGroup(p, d, i, rule, targets, cluster);
        if (g) groups.push({ d, g });
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
    // Each item of a dimension has a key of its own (a port, a prefix, a block): no match is built twice.
    const dims = g.dims;
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
