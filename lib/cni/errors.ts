// CniError: the one error type every plugin path throws, with the spec's codes and named factories.

/** Error codes of the CNI spec (1-7, 11, 50, 51) and ovsplane's own (100+). */
export const Code = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  Degraded: 51,
  /** A step of ours on the host failed (OVS, ip, IPAM delegate). */
  StepFailed: 100,
  /** The interface or attachment already exists. */
  AlreadyExists: 101,
  /** A CHECK found something missing or different. */
  CheckFailed: 102,
  /** IPAM has no free address left. */
  RangeExhausted: 103,
} as const;

export type CodeValue = (typeof Code)[keyof typeof Code];

/** The error every plugin path throws; the dispatcher turns it into the spec's error JSON. */
export class CniError extends Error {
  /** code and msg as the spec's error JSON shows them; cause (ES2022) keeps the error this one wraps, for debugging. */
  constructor(
    readonly code: number,
    msg: string,
    readonly details = "",
    options?: ErrorOptions,
  ) {
    super(msg, options);
    this.name = "CniError";
  }

  /** The spec's error object, in the given version. */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    const out: { cniVersion: string; code: number; msg: string; details?: string } = {
      cniVersion,
      code: this.code,
      msg: this.message,
    };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** `{ cause }` when there is one (so an error without a cause has no cause property). */
function causeOf(cause: unknown): ErrorOptions | undefined {
  return cause === undefined ? undefined : { cause };
}

/** `invalid config: <field> <value>: <why>` (code 7); cause: the error that made it invalid, if any. */
export function invalidConfig(field: string, value: unknown, why: string, cause?: unknown): CniError {
  const shown = value === undefined ? "" : ` ${JSON.stringify(value)}`;
  return new CniError(Code.InvalidConfig, `invalid config: ${field}${shown}: ${why}`, "", causeOf(cause));
}

/** A bad or missing CNI_* environment variable (code 4); cause: the error that made it bad, if any. */
export function invalidEnv(variable: string, value: string | undefined, why: string, cause?: unknown): CniError {
  const shown = value === undefined ? "" : ` ${JSON.stringify(value)}`;
  return new CniError(Code.InvalidEnv, `invalid environment: ${variable}${shown}: ${why}`, "", causeOf(cause));
}

/** Stdin that is not the JSON we need (code 6); cause: the parser's error, if any. */
export function decodeFailure(why: string, cause?: unknown): CniError {
  return new CniError(Code.DecodeFailure, `cannot decode network configuration: ${why}`, "", causeOf(cause));
}

/** A cniVersion we do not speak, or a command the version lacks (code 1). */
export function incompatibleVersion(version: string, supported: readonly string[], why = "unsupported"): CniError {
  return new CniError(
    Code.IncompatibleVersion,
    `incompatible CNI version ${JSON.stringify(version)}: ${why}`,
    `supported versions: ${supported.join(", ")}`,
  );
}

/** A service (OVSDB, ovs-vswitchd) that does not answer now (code 11); cause: the socket's error, if any. */
export function tryAgainLater(what: string, why: string, cause?: unknown): CniError {
  return new CniError(Code.TryAgainLater, `${what} is not available, try again later: ${why}`, "", causeOf(cause));
}

/** One step of a command failed on the host; the message names the step (code 100, or err's own code); err is the cause. */
export function stepFailed(step: string, err: unknown): CniError {
  if (err instanceof CniError) {
    return new CniError(err.code, `${step}: ${err.message}`, err.details, { cause: err });
  }
  return new CniError(Code.StepFailed, `${step}: ${messageOf(err)}`, detailsOf(err), { cause: err });
}

/** The thing ADD would create is already there (code 101). */
export function alreadyExists(what: string): CniError {
  return new CniError(Code.AlreadyExists, `${what} already exists`);
}

/** CHECK found a piece missing or different (code 102); cause: the error that showed it, if any. */
export function checkFailed(what: string, why: string, cause?: unknown): CniError {
  return new CniError(Code.CheckFailed, `check failed: ${what}: ${why}`, "", causeOf(cause));
}

/** The text of any thrown value. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** An error's stack followed by its cause chain ("caused by: ..."), for OVSPLANE_DEBUG. */
export function causeChain(err: unknown, maxDepth = 8): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  for (let e = err; e !== undefined && !seen.has(e) && parts.length < maxDepth; e = e instanceof Error ? e.cause : undefined) {
    seen.add(e);
    const text = e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e);
    parts.push(parts.length ? `caused by: ${text}` : text);
  }
  return parts.join("\n");
}

function detailsOf(err: unknown): string {
  if (err && typeof err === "object" && "stderr" in err) return String((err as { stderr: unknown }).stderr).trim();
  return "";
}
