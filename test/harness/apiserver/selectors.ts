// Field and label selectors as the real server parses them (field: =, ==, !=; label: also k, !k, in, notin), and JSON patches.
import { ApiError, Reason, RESOURCES, type ResourceInfo, type ResourceName } from "./resources.ts";

/** A parsed selector: a predicate on objects. */
export type Selector = (obj: Record<string, unknown>) => boolean;

/** Value at a dotted path as the server's field set renders it ("" when absent, booleans as "true"/"false"). */
function fieldValue(obj: Record<string, unknown>, path: string): string {
  let cur: unknown = obj;
  for (const k of path.split(".")) cur = cur && typeof cur === "object" ? (cur as Record<string, unknown>)[k] : undefined;
  return cur === undefined || cur === null ? "" : String(cur);
}

/** Splits on commas outside parentheses. */
function terms(s: string): string[] {
  const out: string[] = [];
  let depth = 0, cur = "";
  for (const c of s) {
    if (c === "(") depth++;
    if (c === ")") depth--;
    if (c === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t);
}

/**
 * Parses a fieldSelector for a resource (`spec.nodeName=n1,metadata.namespace!=kube-system`). Fields other than
 * metadata.name, metadata.namespace and the resource's own list give 400 like the real server.
 */
export function parseFieldSelector(resource: ResourceName, s: string | null | undefined): Selector {
  if (!s) return () => true;
  const info: ResourceInfo = RESOURCES[resource];
  const preds = terms(s).map((t) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(t);
    if (!m) throw new ApiError(400, Reason.BadRequest, `invalid selector: '${s}'; can't understand '${t}'`);
    const [, key, op, value] = m as unknown as [string, string, string, string];
    if (key !== "metadata.name" && key !== "metadata.namespace" && !info.fields.includes(key)) {
      throw new ApiError(400, Reason.BadRequest, `field label not supported: ${key}`);
    }
    return (o: Record<string, unknown>) => (fieldValue(o, key) === value) === (op !== "!=");
  });
  return (o) => preds.every((p) => p(o));
}

/** Parses a labelSelector: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma-separated (AND). */
export function parseLabelSelector(s: string | null | undefined): Selector {
  if (!s) return () => true;
  const labelsOf = (o: Record<string, unknown>): Record<string, string> =>
    ((o.metadata as Record<string, unknown> | undefined)?.labels as Record<string, string> | undefined) ?? {};
  const preds = terms(s).map((t): Selector => {
    let m = /^!\s*([\w./-]+)$/.exec(t);
    if (m) return (o) => !Object.hasOwn(labelsOf(o), m![1]!);
    m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(t);
    if (m) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const set = new Set(list.split(",").map((v) => v.trim()));
      return (o) => {
        const l = labelsOf(o);
        return op === "in" ? Object.hasOwn(l, key) && set.has(l[key]!) : !Object.hasOwn(l, key) || !set.has(l[key]!);
      };
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(t);
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      return (o) => {
        const l = labelsOf(o);
        return op === "!=" ? l[key] !== value : Object.hasOwn(l, key) && l[key] === value;
      };
    }
    m = /^([\w./-]+)$/.exec(t);
    if (m) return (o) => Object.hasOwn(labelsOf(o), m![1]!);
    throw new ApiError(400, Reason.BadRequest, `unable to parse requirement: invalid label selector: '${t}'`);
  });
  return (o) => preds.every((p) => p(o));
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else (arrays too) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch (add, remove, replace, test, copy, move) on a copy of doc. Throws 422 when an op fails. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new ApiError(400, Reason.BadRequest, "json patch must be an array of operations");
  const root = { doc: structuredClone(doc) as unknown };
  const fail = (msg: string): never => {
    throw new ApiError(422, Reason.Invalid, `the server rejected our request due to an error in our request: ${msg}`);
  };
  const locate = (path: string): [Record<string, unknown> | unknown[], string] => {
    const toks = path === "" ? [] : path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    let parent: unknown = root, key = "doc";
    for (const t of toks) {
      parent = (parent as Record<string, unknown>)[key];
      if (typeof parent !== "object" || parent === null) fail(`path ${path} not found`);
      key = t;
    }
    return [parent as Record<string, unknown> | unknown[], key];
  };
  const get = (path: string): unknown => {
    const [p, k] = locate(path);
    return (p as Record<string, unknown>)[k];
  };
  const put = (path: string, v: unknown, insert: boolean): void => {
    const [p, k] = locate(path);
    if (Array.isArray(p)) {
      const i = k === "-" ? p.length : Number(k);
      if (!Number.isInteger(i) || i < 0 || i > p.length) fail(`index ${k} out of range`);
      p.splice(i, insert ? 0 : 1, v);
    } else p[k] = v;
  };
  const del = (path: string): void => {
    const [p, k] = locate(path);
    if (Array.isArray(p)) p.splice(Number(k), 1);
    else if (!Object.hasOwn(p, k)) fail(`path ${path} not found`);
    else delete p[k];
  };
  for (const op of ops as { op: string; path: string; value?: unknown; from?: string }[]) {
    switch (op.op) {
      case "add": put(op.path, structuredClone(op.value), true); break;
      case "replace": if (get(op.path) === undefined) fail(`path ${op.path} not found`); put(op.path, structuredClone(op.value), false); break;
      case "remove": del(op.path); break;
      case "test": if (JSON.stringify(get(op.path)) !== JSON.stringify(op.value)) fail(`test failed at ${op.path}`); break;
      case "copy": put(op.path, structuredClone(get(op.from ?? "")), true); break;
      case "move": { const v = get(op.from ?? ""); del(op.from ?? ""); put(op.path, v, true); break; }
      default: fail(`unknown op ${String(op.op)}`);
    }
  }
  return root.doc;
}
