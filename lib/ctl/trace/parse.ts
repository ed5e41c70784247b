// Pure parser of `ovs-appctl ofproto/trace` text: passes (the first and each conntrack resume) of table steps.

/** One flow table lookup in a trace: the flow that matched (or none) and what it did. */
export interface TraceStep {
  /** The bridge it ran on (a tunnel output continues on the underlay bridge, e.g. br-phy). */
  bridge?: string;
  /** OpenFlow table number. */
  table: number;
  /** The matched flow's match as OVS prints it ("" for a match-all flow); undefined on "No match". */
  match?: string;
  priority?: number;
  /** The matched flow's cookie; undefined when the line has none (no match, or cookie 0 omitted). */
  cookie?: bigint;
  /** Actions, one per line as printed ("load:0x64->NXM_NX_REG0[]", "goto_table:10", "drop"). */
  actions: string[];
  /** OVS's own comments under the actions (" -> output port is 4"), without the arrow. */
  notes: string[];
}

/** One pass through the pipeline: the packet as it entered, its steps, and what came out. */
export interface TracePass {
  /** "recirc(0x3)" for a conntrack resume; undefined for the first pass. */
  recirc?: string;
  /** The conntrack state the resume was traced with ("trk|new"), when it is a resume. */
  ctState?: string;
  /** The flow the pass started with ("Flow: ..."), as fields. */
  flow: Record<string, string>;
  /** The bridge the pass started on (the pipeline's). */
  bridge?: string;
  steps: TraceStep[];
  /** "Final flow: ..." as fields (the starting flow when OVS says "unchanged"). */
  finalFlow: Record<string, string>;
  /** "Datapath actions: ..." text. */
  datapathActions: string;
}

/** A whole ofproto/trace output. */
export interface ParsedTrace {
  passes: TracePass[];
}

/**
 * A flow as OVS prints it ("tcp,reg0=0x64,in_port=3,...") as fields; bare words (tcp, eth, ip) map to "".
 * Commas inside parentheses are kept (they do not occur in the fields ofproto/trace prints, but actions do).
 */
export function parseFlowFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of splitTop(text.trim())) {
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) out[part] = "";
    else out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** Splits on commas outside parentheses. */
function splitTop(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

const STEP_RE = /^\s*(\d+)\.\s+(.*)$/;
const RESUME_RE = /^(recirc\([^)]*\))\s+-\s+resume conntrack with (?:default )?ct_state=(\S+)/;

/** Reads one step header ("30. ip,nw_dst=10.244.1.3, priority 200, cookie 0x6f76..." or "10. No match."). */
function parseStepHeader(table: number, rest: string): TraceStep {
  const step: TraceStep = { table, actions: [], notes: [] };
  if (/^No match/i.test(rest)) return step;
  let m = /,?\s*cookie (0x[0-9a-f]+)\s*$/i.exec(rest);
  if (m) {
    step.cookie = BigInt(m[1]!);
    rest = rest.slice(0, m.index);
  }
  m = /(?:^|,\s*)priority (\d+)\s*$/.exec(rest);
  if (m) {
    step.priority = Number(m[1]);
    rest = rest.slice(0, m.index);
  }
  step.match = rest.trim();
  return step;
}

/**
 * Parses ofproto/trace output into passes. A pass starts at the top ("Flow: ...") or at a
 * "recirc(0x..) - resume conntrack with ct_state=..." banner; steps are the numbered lines under
 * `bridge("...")`, each followed by its indented actions and "-> ..." notes.
 */
export function parseTrace(text: string): ParsedTrace {
  const passes: TracePass[] = [];
  let pass: TracePass | undefined;
  let step: TraceStep | undefined;
  let bridge: string | undefined;
  const newPass = (): TracePass => ({ flow: {}, steps: [], finalFlow: {}, datapathActions: "" });
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+$/, "");
    const resume = RESUME_RE.exec(line);
    if (resume) {
      pass = { ...newPass(), recirc: resume[1]!, ctState: resume[2]! };
      passes.push(pass);
      step = undefined;
      continue;
    }
    if (line.startsWith("Flow: ")) {
      if (!pass || pass.steps.length || pass.datapathActions) {
        pass = newPass();
        passes.push(pass);
      }
      pass.flow = parseFlowFields(line.slice(6));
      continue;
    }
    if (!pass) continue;
    const br = /^bridge\("([^"]+)"\)/.exec(line);
    if (br) {
      bridge = br[1]!;
      pass.bridge ??= bridge;
      step = undefined;
      continue;
    }
    if (line.startsWith("Final flow: ")) {
      const f = line.slice(12).trim();
      pass.finalFlow = f === "unchanged" ? { ...pass.flow } : parseFlowFields(f);
      step = undefined;
      continue;
    }
    if (line.startsWith("Datapath actions: ")) {
      pass.datapathActions = line.slice(18).trim();
      continue;
    }
    if (/^(Megaflow|Translation failed|=+|-+)/.test(line)) continue;
    const s = STEP_RE.exec(line);
    if (s && !line.startsWith("     ")) {
      step = parseStepHeader(Number(s[1]), s[2]!);
      if (bridge) step.bridge = bridge;
      pass.steps.push(step);
      continue;
    }
    if (!step) continue;
    const t = line.trim();
    if (!t) continue;
    if (t.startsWith("->")) step.notes.push(t.slice(2).trim());
    else if (t === "thaw" || t.startsWith("Resuming from table")) continue;
    else if (/^(>>>>|bridge\()/.test(t)) step.notes.push(t);
    else step.actions.push(t);
  }
  return { passes };
}
