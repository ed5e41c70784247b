// The one renderer: flows and flow changes as ovs-ofctl text (bundle files, dump matching).
import { hex, type Flow, type FlowOp } from "./pipeline.ts";

/** A flow as ovs-ofctl add-flow text. */
export function renderFlow(f: Flow): string {
  const match = [`table=${f.table}`, `priority=${f.priority}`, `cookie=${hex(f.cookie)}`, ...f.match].join(",");
  return `${match} actions=${f.actions.join(",")}`;
}

/** A list of changes as an `ovs-ofctl bundle` file: applied atomically, in order. */
export function renderBundle(ops: readonly FlowOp[]): string {
  return ops
    .map((o) => (o.op === "add" ? `flow add ${renderFlow(o.flow)}` : `flow delete cookie=${hex(o.cookie)}/${hex(o.mask)}`))
    .join("\n") + "\n";
}
