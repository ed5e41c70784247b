// The shared dispatcher: env, stdin, version negotiation, result conversion and the error JSON.
import { readFileSync } from "node:fs";
import { CniError, Code, decodeFailure, incompatibleVersion, invalidConfig, invalidEnv, messageOf } from "./errors.ts";
import { checkKnownArgs, parseCniArgs } from "./args.ts";
import { compareVersions, convertResult, CURRENT_VERSION, isSupported, parseResult, SUPPORTED_VERSIONS } from "./version.ts";
import type { CniRequest, NetConf, Plugin } from "./types.ts";

/** Container IDs, network names: the spec's pattern, which also keeps them safe in paths. */
export const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** Options of dispatch(). */
export interface DispatchOptions {
  /** Shown when CNI_COMMAND is unset. */
  about: string;
  /** CNI_ARGS keys the plugin understands. */
  knownArgs?: readonly string[];
  /** Environment (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Stdin text (default: read fd 0). */
  stdin?: string;
}

/** Checks CNI_IFNAME the way the kernel and the spec want it. */
export function validateIfname(name: string | undefined): string {
  if (!name) throw invalidEnv("CNI_IFNAME", name, "required");
  if (name.length > 15) throw invalidEnv("CNI_IFNAME", name, "longer than 15 characters");
  if (name === "." || name === ".." || /[/:\s]/.test(name)) throw invalidEnv("CNI_IFNAME", name, "not a valid interface name");
  return name;
}

function readStdin(): string {
  try {
    return readFileSync(0, "utf8");
  } catch {
    return "";
  }
}

/** Decodes stdin into a network configuration object (code 6 when it is not one). */
export function decodeConf(stdin: string): NetConf {
  let conf: unknown;
  try {
    conf = JSON.parse(stdin);
  } catch (e) {
    throw decodeFailure(`stdin is not JSON: ${messageOf(e)}`);
  }
  if (!conf || typeof conf !== "object" || Array.isArray(conf)) throw decodeFailure("stdin is not a JSON object");
  return conf as NetConf;
}

/** Builds the request for a command from env and stdin (throws CniError on bad input). */
export function buildRequest(
  command: CniRequest["command"],
  env: NodeJS.ProcessEnv,
  stdin: string,
  knownArgs: readonly string[],
  conf: NetConf = decodeConf(stdin),
): CniRequest {
  if (conf.cniVersion === undefined) conf.cniVersion = "0.1.0";
  if (typeof conf.cniVersion !== "string" || !isSupported(conf.cniVersion)) {
    throw incompatibleVersion(String(conf.cniVersion), SUPPORTED_VERSIONS);
  }
  const minimum = command === "CHECK" ? "0.4.0" : command === "GC" || command === "STATUS" ? "1.1.0" : "0.1.0";
  if (compareVersions(conf.cniVersion, minimum) < 0) {
    throw incompatibleVersion(conf.cniVersion, SUPPORTED_VERSIONS, `${command} needs cniVersion ${minimum} or newer`);
  }
  if (typeof conf.name !== "string" || !ID_PATTERN.test(conf.name)) {
    throw invalidConfig("name", conf.name, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  }
  const perContainer = command === "ADD" || command === "DEL" || command === "CHECK";
  const containerID = env.CNI_CONTAINERID ?? "";
  if (perContainer && !containerID) throw invalidEnv("CNI_CONTAINERID", undefined, "required");
  if (containerID && !ID_PATTERN.test(containerID)) {
    throw invalidEnv("CNI_CONTAINERID", containerID, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  }
  const netns = env.CNI_NETNS ?? "";
  if ((command === "ADD" || command === "CHECK") && !netns) throw invalidEnv("CNI_NETNS", undefined, "required");
  const ifname = perContainer ? validateIfname(env.CNI_IFNAME) : env.CNI_IFNAME ?? "";
  const rawArgs = env.CNI_ARGS ?? "";
  const args = parseCniArgs(rawArgs);
  checkKnownArgs(args, knownArgs);
  const path = (env.CNI_PATH ?? "").split(":").filter(Boolean);
  if (perContainer && command !== "DEL" && path.length === 0 && conf.ipam?.type && conf.ipam.type !== "ovsplane-ipam") {
    throw invalidEnv("CNI_PATH", env.CNI_PATH, "required to find the IPAM plugin");
  }
  const req: CniRequest = { command, containerID, netns, ifname, args, rawArgs, path, stdin, conf };
  if (conf.prevResult !== undefined && conf.prevResult !== null) req.prevResult = parseResult(conf.prevResult);
  return req;
}

/** Runs one CNI command of a plugin with the process's env and stdin; prints the result or error JSON. */
export async function dispatch(plugin: Plugin, opts: DispatchOptions): Promise<void> {
  const env = opts.env ?? process.env;
  const command = env.CNI_COMMAND;
  if (!command) {
    process.stderr.write(`${opts.about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`);
    return;
  }
  let version: string = CURRENT_VERSION;
  try {
    if (command === "VERSION") {
      process.stdout.write(JSON.stringify({ cniVersion: CURRENT_VERSION, supportedVersions: SUPPORTED_VERSIONS }) + "\n");
      return;
    }
    if (!["ADD", "DEL", "CHECK", "GC", "STATUS"].includes(command)) {
      throw invalidEnv("CNI_COMMAND", command, "must be one of ADD, DEL, CHECK, GC, STATUS, VERSION");
    }
    const stdin = opts.stdin ?? readStdin();
    const conf = decodeConf(stdin);
    // Errors answer in the config's version when we speak it.
    if (typeof conf.cniVersion === "string" && isSupported(conf.cniVersion)) version = conf.cniVersion;
    const req = buildRequest(command as CniRequest["command"], env, stdin, opts.knownArgs ?? [], conf);
    if (req.command === "ADD") {
      const result = await plugin.add(req);
      process.stdout.write(JSON.stringify(convertResult(result, req.conf.cniVersion)) + "\n");
    } else {
      await plugin[req.command.toLowerCase() as "del" | "check" | "gc" | "status"](req);
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(Code.StepFailed, `unexpected error: ${messageOf(err)}`);
    if (env.OVSPLANE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.stdout.write(JSON.stringify(e.toJSON(version)) + "\n");
    process.exitCode = 1;
  }
}
