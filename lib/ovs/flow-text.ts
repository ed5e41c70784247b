// OpenFlow flows as ovs-ofctl text (what tools, logs and errors show) and their identity for diffs.
import { type Action, CtState, EthType, FIELDS, FIELD_ORDER, type FieldName, type Flow, type FlowOp, IN_PORT, type Match, type MatchValue, type NatSpec, type Slice, formatValue, fullMask } from "./flow.ts";

/** Hex with 0x, as OpenFlow tools print cookies. */
export function hex(n: bigint): string {
  return `0x${n.toString(16)}`;
}

const CT_FLAGS = Object.entries(CtState).map(([k, b]) => [k.toLowerCase(), BigInt(b)] as const);

/** ct_state as ovs-ofctl flags (`+trk+est-new`), or hex when a bit outside the named ones is matched. */
function renderCtState(v: MatchValue): string {
  const mask = v.mask ?? fullMask("ct_state");
  if (CT_FLAGS.reduce((m, [, b]) => m & ~b, mask) !== 0n) return v.mask === undefined ? hex(v.value) : `${hex(v.value)}/${hex(v.mask)}`;
  return CT_FLAGS.filter(([, b]) => mask & b).map(([n, b]) => `${v.value & b ? "+" : "-"}${n}`).join("");
}

function renderMatchValue(name: FieldName, v: MatchValue): string {
  if (name === "ct_state") return renderCtState(v);
  const def = FIELDS[name];
  if (v.mask === undefined) return formatValue(def.kind, v.value);
  if (def.kind === "ipv4") {
    const bits = v.mask.toString(2).padStart(32, "0");
    if (/^1*0*$/.test(bits)) return `${formatValue("ipv4", v.value)}/${bits.indexOf("0") < 0 ? 32 : bits.indexOf("0")}`;
  }
  return def.kind === "int" ? `${hex(v.value)}/${hex(v.mask)}` : `${formatValue(def.kind, v.value)}/${formatValue(def.kind, v.mask)}`;
}

/** A match as ovs-ofctl tokens, in FIELD_ORDER; `ip`/`arp` stand for the ethertypes. */
export function renderMatch(m: Match): string[] {
  const out: string[] = [];
  for (const name of FIELD_ORDER) {
    const v = m[name];
    if (!v) continue;
    if (name === "dl_type" && v.mask === undefined && (v.value === BigInt(EthType.IPv4) || v.value === BigInt(EthType.ARP))) {
      out.push(v.value === BigInt(EthType.IPv4) ? "ip" : "arp");
    } else out.push(`${name}=${name === "dl_type" ? hex(v.value) : renderMatchValue(name, v)}`);
  }
  return out;
}

function renderSlice(s: Slice): string {
  const def = FIELDS[s.field];
  if (s.ofs === 0 && s.nbits === def.bytes * 8) return `${def.nxm}[]`;
  return s.nbits === 1 ? `${def.nxm}[${s.ofs}]` : `${def.nxm}[${s.ofs}..${s.ofs + s.nbits - 1}]`;
}

/** One action as ovs-ofctl text. */
export function renderAction(a: Action): string {
  switch (a.type) {
    case "output":
      return a.port === IN_PORT ? "IN_PORT" : `output:${a.port}`;
    case "output_reg":
      return `output:${renderSlice(a.src)}`;
    case "load":
      return `load:${a.value}->${renderSlice(a.dst)}`;
    case "move":
      return `move:${renderSlice(a.src)}->${renderSlice(a.dst)}`;
    case "set_field":
      return `set_field:${formatValue(FIELDS[a.field].kind, a.value)}->${FIELDS[a.field].setName}`;
    case "goto_table":
      return `goto_table:${a.table}`;
    case "resubmit":
      return `resubmit(,${a.table})`;
    case "conjunction":
      return `conjunction(${a.id},${a.clause}/${a.nClauses})`;
    case "multipath":
      return `multipath(symmetric_l3l4+udp,0,hrw,${a.nLinks},0,${renderSlice(a.dst)})`;
    case "ct": {
      const parts = [...(a.commit ? ["commit"] : []), `zone=${a.zone}`, ...(a.table === undefined ? [] : [`table=${a.table}`])];
      if (a.nat) parts.push(renderNat(a.nat));
      if (a.exec?.length) parts.push(`exec(${a.exec.map(renderAction).join(",")})`);
      return `ct(${parts.join(",")})`;
    }
  }
}

function renderNat(n: NatSpec): string {
  if (!n.dst) return "nat";
  return `nat(dst=${formatValue("ipv4", n.dst.ip)}${n.dst.port === undefined ? "" : `:${n.dst.port}`})`;
}

/** Actions as ovs-ofctl text (`drop` when there are none). */
export function renderActions(actions: readonly Action[]): string {
  return actions.length ? actions.map(renderAction).join(",") : "drop";
}

/** A flow as ovs-ofctl add-flow text. */
export function renderFlow(fl: Flow): string {
  return `${[`table=${fl.table}`, `priority=${fl.priority}`, `cookie=${hex(fl.cookie)}`, ...renderMatch(fl.match)].join(",")} actions=${renderActions(fl.actions)}`;
}

/** A list of changes as an `ovs-ofctl bundle` file: applied atomically, in order. */
export function renderBundle(ops: readonly FlowOp[]): string {
  const line = (o: FlowOp) => {
    if (o.op === "add") return `flow add ${renderFlow(o.flow)}`;
    if (o.op === "delete") return `flow delete cookie=${hex(o.cookie)}/${hex(o.mask)}`;
    const fl = o.flow;
    return `flow delete_strict ${[`table=${fl.table}`, `priority=${fl.priority}`, `cookie=${hex(fl.cookie)}/-1`, ...renderMatch(fl.match)].join(",")}`;
  };
  return ops.map(line).join("\n") + "\n";
}

/** The identity of a flow in its switch: table, priority and match (what OFPFC_ADD replaces). */
export function flowKey(fl: Pick<Flow, "table" | "priority" | "match">): string {
  return `table=${fl.table},priority=${fl.priority},${renderMatch(fl.match).join(",")}`;
}

/** True when two flows are the same: key, cookie and actions. */
export function sameFlow(a: Flow, b: Flow): boolean {
  return a.cookie === b.cookie && renderFlow(a) === renderFlow(b);
}
