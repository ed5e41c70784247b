// IPAM delegation: in-process for ovsplane-ipam, else exec the named plugin from CNI_PATH.
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { CniError, Code, invalidConfig } from "../cni/errors.ts";
import { run } from "../host/exec.ts";
import { parseResult } from "../cni/version.ts";
import type { CniRequest, Result } from "../cni/types.ts";
import { IPAM_TYPE } from "../ipam/type.ts";
import { settings } from "../settings.ts";

/** Finds an executable plugin by name in CNI_PATH. */
export function findPlugin(name: string, path: readonly string[]): string {
  for (const dir of path) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  throw invalidConfig("ipam.type", name, `no executable plugin of that name in CNI_PATH (${path.join(":") || "empty"})`);
}

/** True when the IPAM runs in this process (unless settings.ipamExec asks to exec it from CNI_PATH). */
function inProcess(type: string): boolean {
  return type === IPAM_TYPE && !settings.ipamExec;
}

/** Runs the IPAM delegate for a command; returns its result (1.x shape) for ADD. */
export async function delegateIpam(req: CniRequest, command: CniRequest["command"]): Promise<Result | undefined> {
  const type = String(req.conf.ipam?.type ?? "");
  if (inProcess(type)) {
    const { ipamPlugin } = await import("../ipam/plugin.ts");
    const sub: CniRequest = { ...req, command };
    switch (command) {
      case "ADD":
        return ipamPlugin.add(sub);
      case "DEL":
        return void (await ipamPlugin.del(sub));
      case "CHECK":
        return void (await ipamPlugin.check(sub));
      case "GC":
        return void (await ipamPlugin.gc(sub));
      case "STATUS":
        return void (await ipamPlugin.status(sub));
    }
  }
  const bin = findPlugin(type, req.path);
  const r = await run([bin], {
    input: req.stdin,
    allowFail: true,
    timeoutMs: 30_000,
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: req.containerID,
      CNI_NETNS: req.netns,
      CNI_IFNAME: req.ifname,
      CNI_ARGS: req.rawArgs,
      CNI_PATH: req.path.join(":"),
    },
  });
  let out: Record<string, unknown> | undefined;
  try {
    out = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    out = undefined;
  }
  if (r.code !== 0) {
    if (out && typeof out.code === "number") {
      throw new CniError(out.code, `IPAM plugin ${type}: ${String(out.msg ?? "")}`, String(out.details ?? ""));
    }
    throw new CniError(Code.StepFailed, `IPAM plugin ${type} exited ${r.code}`, (r.stderr || r.stdout).trim());
  }
  if (command !== "ADD") return undefined;
  if (!out) throw new CniError(Code.StepFailed, `IPAM plugin ${type} printed no result`);
  return parseResult(out);
}
