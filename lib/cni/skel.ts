// The shared dispatcher: env, stdin, version negotiation, result conversion and the error JSON.
import { readFileSync } from "node:fs";
import { causeChain, CniError, Code, decodeFailure, incompatibleVersion, invalidConfig, invalidEnv, messageOf } from "./errors.ts";
import { checkKnownArgs, parseCniArgs } from "./args.ts";
import { ID_PATTERN, validateIfname } from "./names.ts";
import { compareVersions, convertResult, CURRENT_VERSION, isSupported, parseResult, SUPPORTED_VERSIONS, versionAnswer } from "./version.ts";
import { settings } from "../settings.ts";
import type { CniRequest, NetConf, Plugin, Result } from "./types.ts";
import { STDOUT, warn, writeAll } from "./stdio.ts";

/** What buildRequest() needs to know of the plugin. */
export interface RequestOptions {
  /** CNI_ARGS keys the plugin understands. */
  knownArgs?: readonly string[];
  /** IPAM types the plugin runs itself: ADD and CHECK need no CNI_PATH to find them. */
  builtinIpam?: readonly string[];
}

/** Where dispatch() writes: the process's stdout, stderr and exit code unless injected. */
export interface DispatchOutput {
  /** Result and error JSON (default: written to fd 1, see stdio.ts). */
  stdout?: (text: string) => void;
  /** The about text and debug output (default: written to fd 2). */
  stderr?: (text: string) => void;
  /** Called with 1 when the command failed (default: sets process.exitCode). */
  exit?: (code: number) => void;
}

/** Options of dispatch(). */
export interface DispatchOptions extends RequestOptions, DispatchOutput {
  /** Shown when CNI_COMMAND is unset. */
  about: string;
  /** The CNI_* environment (the entry passes process.env). */
  env: Record<string, string | undefined>;
  /** Stdin text (default: read fd 0). */
  stdin?: string;
  /** Print the stack and cause chain of an error to stderr (default settings.debug). */
  debug?: boolean;
  /** Called once after ADD/DEL/CHECK/GC/STATUS with what happened (not for VERSION); its errors go to stderr only. */
  onDone?: (outcome: DispatchOutcome) => void;
}

/** What one dispatched command did, for an observer (a call log). */
export interface DispatchOutcome {
  /** CNI_COMMAND. */
  command: string;
  /** The environment the command ran with. */
  env: Record<string, string | undefined>;
  /** The network configuration, when stdin decoded to one. */
  conf?: NetConf;
  /** The ADD result (current shape). */
  result?: Result;
  /** The error answered, when the command failed. */
  error?: { code: number; msg: string; details?: string };
  /** Milliseconds from dispatch to the answer written. */
  durationMs: number;
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
    throw decodeFailure(`stdin is not JSON: ${messageOf(e)}`, e);
  }
  if (!conf || typeof conf !== "object" || Array.isArray(conf)) throw decodeFailure("stdin is not a JSON object");
  return conf as NetConf;
}

/** Builds the request for a command from env and stdin (throws CniError on bad input). */
export function buildRequest(
  command: CniRequest["command"],
  env: Record<string, string | undefined>,
  stdin: string,
  opts: RequestOptions = {},
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
  checkKnownArgs(args, opts.knownArgs ?? []);
  const path = (env.CNI_PATH ?? "").split(":").filter(Boolean);
  const ipamType = conf.ipam?.type;
  if (perContainer && command !== "DEL" && path.length === 0 && ipamType && !(opts.builtinIpam ?? []).includes(ipamType)) {
    throw invalidEnv("CNI_PATH", env.CNI_PATH, "required to find the IPAM plugin");
  }
  const req: CniRequest = { command, containerID, netns, ifname, args, rawArgs, path, stdin, conf };
  if (conf.prevResult !== undefined && conf.prevResult !== null) req.prevResult = parseResult(conf.prevResult);
  return req;
}

/** Runs one CNI command of a plugin with the given env and stdin; writes the result or error JSON to opts' output. */
export async function dispatch(plugin: Plugin, opts: DispatchOptions): Promise<void> {
  const stdout = opts.stdout ?? ((s: string) => writeAll(STDOUT, s));
  const stderr = opts.stderr ?? warn;
  const exit = opts.exit ?? ((code: number) => void (process.exitCode = code));
  const env = opts.env;
  const command = env.CNI_COMMAND;
  if (!command) {
    stderr(`${opts.about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`);
    return;
  }
  let version: string = CURRENT_VERSION;
  const started = performance.now();
  const outcome: Omit<DispatchOutcome, "durationMs"> = { command, env };
  try {
    if (command === "VERSION") {
      stdout(versionAnswer());
      return;
    }
    if (!["ADD", "DEL", "CHECK", "GC", "STATUS"].includes(command)) {
      throw invalidEnv("CNI_COMMAND", command, "must be one of ADD, DEL, CHECK, GC, STATUS, VERSION");
    }
    const stdin = opts.stdin ?? readStdin();
    const conf = decodeConf(stdin);
    outcome.conf = conf;
    // Errors answer in the config's version when we speak it.
    if (typeof conf.cniVersion === "string" && isSupported(conf.cniVersion)) version = conf.cniVersion;
    const req = buildRequest(command as CniRequest["command"], env, stdin, opts, conf);
    if (req.command === "ADD") {
      const result = await plugin.add(req);
      outcome.result = result;
      stdout(JSON.stringify(convertResult(result, req.conf.cniVersion)) + "\n");
    } else {
      await plugin[req.command.toLowerCase() as "del" | "check" | "gc" | "status"](req);
    }
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(Code.StepFailed, `unexpected error: ${messageOf(err)}`, "", { cause: err });
    if ((opts.debug ?? settings.debug) && err instanceof Error) stderr(`${causeChain(err)}\n`);
    stdout(JSON.stringify(e.toJSON(version)) + "\n");
    outcome.error = { code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
    exit(1);
  }
  if (opts.onDone) {
    try {
      opts.onDone({ ...outcome, durationMs: performance.now() - started });
    } catch (err) {
      stderr(`observer failed: ${messageOf(err)}\n`);
    }
  }
}
