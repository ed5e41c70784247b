// Agent mode: the pod's segment from the namespace mapping ovsplane-agent writes (<stateDir>/segments.json).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CniError, Code, messageOf } from "../cni/errors.ts";
import type { CniRequest } from "../cni/types.ts";
import { MAX_VNI, parseSegment, type AgentConfig, type OvsplaneConfig } from "./config.ts";

/** The file in the agent's state directory that maps namespaces to segments. */
export const SEGMENTS_FILE = "segments.json";

/** The content of segments.json: each namespace's segment (VNI), as the agent last reported it. */
export interface SegmentMap {
  namespaces: ReadonlyMap<string, number>;
  /** The agent's generation counter, when the file has one. */
  generation?: number;
}

/**
 * Parses the text of segments.json (pure). Throws a plain Error saying what is wrong: not JSON, not an
 * object, `namespaces` not an object, a segment that is not an integer 1..MAX_VNI, a non-numeric `generation`.
 */
export function parseSegments(text: string): SegmentMap {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${messageOf(e)}`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("not a JSON object");
  const { namespaces, generation } = doc as Record<string, unknown>;
  if (typeof namespaces !== "object" || namespaces === null || Array.isArray(namespaces)) {
    throw new Error('"namespaces" is not an object of namespace → segment');
  }
  if (generation !== undefined && (typeof generation !== "number" || !Number.isFinite(generation))) {
    throw new Error(`"generation" ${JSON.stringify(generation)} is not a number`);
  }
  const map = new Map<string, number>();
  for (const [ns, v] of Object.entries(namespaces)) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_VNI) {
      throw new Error(`namespace ${JSON.stringify(ns)}: segment ${JSON.stringify(v)} is not an integer 1..${MAX_VNI}`);
    }
    map.set(ns, v);
  }
  return generation === undefined ? { namespaces: map } : { namespaces: map, generation };
}

/** Code 11 naming the namespace: the agent has not (readably) reported its segment yet. */
function notReported(namespace: string, why: string, cause?: unknown): CniError {
  return new CniError(Code.TryAgainLater, `the agent has not reported namespace ${namespace} yet (${why}); try again later`, "", cause === undefined ? undefined : { cause });
}

/** The segment of a namespace in a parsed mapping; code 11 when the namespace is not in it (pure). */
export function segmentOfNamespace(map: SegmentMap, namespace: string, file = SEGMENTS_FILE): number {
  const s = map.namespaces.get(namespace);
  if (s === undefined) throw notReported(namespace, `not in ${file}${map.generation === undefined ? "" : ` generation ${map.generation}`}`);
  return s;
}

/** Reads `<stateDir>/segments.json` and returns the namespace's segment; code 11 when missing, unreadable, malformed or without it. */
export function readNamespaceSegment(agent: AgentConfig, namespace: string): number {
  const file = join(agent.stateDir, SEGMENTS_FILE);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw notReported(namespace, code === "ENOENT" ? `${file} does not exist` : `cannot read ${file}: ${messageOf(e)}`, e);
  }
  let map: SegmentMap;
  try {
    map = parseSegments(text);
  } catch (e) {
    throw notReported(namespace, `${file} is malformed: ${messageOf(e)}`, e);
  }
  return segmentOfNamespace(map, namespace, file);
}

/**
 * The segment of an attachment in agent mode: CNI_ARGS OVSPLANE_SEGMENT when given; else, for a Kubernetes pod
 * (CNI_ARGS K8S_POD_NAMESPACE), its namespace's segment from the agent's mapping (code 11 when not known yet,
 * so a pod never lands in a wrong segment); else the config's `segment`. Never calls the API server.
 */
export function agentSegmentOf(req: CniRequest, cfg: OvsplaneConfig, agent: AgentConfig): number {
  const v = req.args.OVSPLANE_SEGMENT;
  if (v !== undefined) return parseSegment("OVSPLANE_SEGMENT", v);
  const ns = req.args.K8S_POD_NAMESPACE;
  if (ns) return readNamespaceSegment(agent, ns);
  return cfg.segment;
}
