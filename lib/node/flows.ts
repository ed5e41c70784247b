// Flow changes as one atomic bundle per call (native OpenFlow client, or ovs-ofctl), dumps filtered by cookie.
import { createConnection } from "node:net";
import { parseEndpoint } from "../ovs/endpoint.ts";
import { run, trace } from "../host/exec.ts";
import { applyFlowsNative } from "../ovs/openflow.ts";
import { renderBundle } from "../dataplane/render.ts";
import { hex, type FlowOp } from "../dataplane/pipeline.ts";

/**
 * Applies changes atomically as one OpenFlow 1.4 bundle, over the management socket itself
 * (lib/ovs/openflow.ts), or with one `ovs-ofctl bundle` when OVSPLANE_OFCTL=1 (for debugging).
 */
export async function applyFlows(ofSocket: string, ops: readonly FlowOp[]): Promise<void> {
  if (ops.length === 0) return;
  if (process.env.OVSPLANE_OFCTL !== "1") {
    trace(`OpenFlow bundle of ${ops.length} changes to ${ofSocket}`);
    await applyFlowsNative(ofSocket, ops);
    trace("OpenFlow bundle committed");
    return;
  }
  await run(["ovs-ofctl", "-O", "OpenFlow14", "--timeout=5", "bundle", ofSocket, "-"], { input: renderBundle(ops) });
}

/** Dumps flows whose cookie matches under the mask; lines as ovs-ofctl prints them (stats removed). */
export async function dumpFlows(ofSocket: string, cookie: bigint, mask: bigint): Promise<string[]> {
  const r = await run([
    "ovs-ofctl", "-O", "OpenFlow13", "--timeout=5", "--no-stats", "dump-flows", ofSocket, `cookie=${hex(cookie)}/${hex(mask)}`,
  ]);
  return r.stdout.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("OFPST_") && !l.startsWith("NXST_"));
}

/** True when something (ovs-vswitchd) accepts connections on the OpenFlow endpoint within the timeout. */
export function ofSocketAlive(ofSocket: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection(parseEndpoint("ofSocket", ofSocket));
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}
