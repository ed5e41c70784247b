// Unit tests of agent mode's inputs: the `agent` config field and segments.json (parse, lookup, the read edge, the segment choice).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_VNI, parseConfig } from "../../lib/plugin/config.ts";
import { agentSegmentOf, parseSegments, readNamespaceSegment, segmentOfNamespace, SEGMENTS_FILE } from "../../lib/plugin/segments.ts";
import type { NetConf } from "../../lib/cni/types.ts";
import { cniRequest, fails } from "./helpers.ts";

function conf(over: Record<string, unknown> = {}): NetConf {
  return { cniVersion: "1.1.0", name: "net1", type: "ovsplane", ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.244.1.0/24" }]] }, ...over };
}

/** Expects parseSegments to refuse the text with a message containing inMsg. */
function malformed(text: string, inMsg: string): void {
  try {
    parseSegments(text);
  } catch (e) {
    assert.ok((e as Error).message.includes(inMsg), `${JSON.stringify((e as Error).message)} should name ${JSON.stringify(inMsg)}`);
    return;
  }
  assert.unreachable(`${text} should be refused`);
}

/** A temp state dir with an optional segments.json; removed by the returned function. */
function stateDir(content?: string): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "ovsp-agent-"));
  if (content !== undefined) writeFileSync(join(dir, SEGMENTS_FILE), content);
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test("agent: absent in static mode, parsed as an absolute stateDir, refused otherwise (code 7)", () => {
  assert.not.ok("agent" in parseConfig(conf()));
  assert.equal(parseConfig(conf({ agent: { stateDir: "/run/ovsplane" } })).agent, { stateDir: "/run/ovsplane" });
  fails(() => parseConfig(conf({ agent: true })), 7, "agent");
  fails(() => parseConfig(conf({ agent: null })), 7, "agent");
  fails(() => parseConfig(conf({ agent: ["/run"] })), 7, "agent");
  fails(() => parseConfig(conf({ agent: {} })), 7, "agent.stateDir", "absolute");
  fails(() => parseConfig(conf({ agent: { stateDir: "run/ovsplane" } })), 7, "agent.stateDir", "run/ovsplane");
  fails(() => parseConfig(conf({ agent: { stateDir: "" } })), 7, "agent.stateDir");
  fails(() => parseConfig(conf({ agent: { stateDir: 5 } })), 7, "agent.stateDir");
});

test("segments.json: a valid mapping, with and without generation", () => {
  const m = parseSegments('{"namespaces": {"default": 100, "kube-system": 1, "big": 16777215}, "generation": 7}');
  assert.equal([...m.namespaces], [["default", 100], ["kube-system", 1], ["big", MAX_VNI]]);
  assert.is(m.generation, 7);
  const n = parseSegments('{"namespaces": {}}');
  assert.is(n.namespaces.size, 0);
  assert.not.ok("generation" in n);
  assert.is(segmentOfNamespace(m, "default"), 100);
});

test("segments.json: a namespace not in it is code 11 naming it; prototype keys are not namespaces", () => {
  const m = parseSegments('{"namespaces": {"default": 100}, "generation": 3}');
  fails(() => segmentOfNamespace(m, "other"), 11, "the agent has not reported namespace other yet", "generation 3");
  fails(() => segmentOfNamespace(m, "constructor"), 11, "namespace constructor");
  fails(() => segmentOfNamespace(m, "__proto__"), 11, "namespace __proto__");
  assert.is(segmentOfNamespace(parseSegments('{"namespaces": {"__proto__": 5}}'), "__proto__"), 5);
});

test("segments.json: malformed JSON is refused", () => {
  malformed("", "not JSON");
  malformed('{"namespaces": {"default": 100}', "not JSON");
  malformed("{'namespaces': {}}", "not JSON");
});

test("segments.json: wrong types are refused", () => {
  malformed("null", "not a JSON object");
  malformed("[]", "not a JSON object");
  malformed("42", "not a JSON object");
  malformed("{}", '"namespaces"');
  malformed('{"namespaces": [100]}', '"namespaces"');
  malformed('{"namespaces": null}', '"namespaces"');
  malformed('{"namespaces": {"default": "100"}}', 'namespace "default"');
  malformed('{"namespaces": {"default": 1.5}}', 'namespace "default"');
  malformed('{"namespaces": {"default": 0}}', "1..16777215");
  malformed('{"namespaces": {"default": 16777216}}', "1..16777215");
  malformed('{"namespaces": {"default": null}}', 'namespace "default"');
  malformed('{"namespaces": {"default": 100}, "generation": "3"}', '"generation"');
});

test("readNamespaceSegment: code 11 naming the namespace when the file is missing, unreadable, malformed, or lacks it", () => {
  const ok = stateDir('{"namespaces": {"default": 100, "other": 200}, "generation": 1}');
  const missing = stateDir();
  const bad = stateDir('{"namespaces": ');
  const types = stateDir('{"namespaces": {"default": "x"}}');
  try {
    assert.is(readNamespaceSegment({ stateDir: ok.dir }, "other"), 200);
    fails(() => readNamespaceSegment({ stateDir: ok.dir }, "third"), 11, "namespace third", SEGMENTS_FILE);
    fails(() => readNamespaceSegment({ stateDir: missing.dir }, "default"), 11, "namespace default", "does not exist");
    fails(() => readNamespaceSegment({ stateDir: join(missing.dir, "nope") }, "default"), 11, "namespace default");
    fails(() => readNamespaceSegment({ stateDir: bad.dir }, "default"), 11, "namespace default", "malformed");
    fails(() => readNamespaceSegment({ stateDir: types.dir }, "default"), 11, "namespace default", "malformed");
    // A directory where the file should be: unreadable (EISDIR; a mode would not stop root).
    mkdirSync(join(missing.dir, SEGMENTS_FILE));
    fails(() => readNamespaceSegment({ stateDir: missing.dir }, "default"), 11, "namespace default", "cannot read");
  } finally {
    for (const d of [ok, missing, bad, types]) d.done();
  }
});

test("agentSegmentOf: OVSPLANE_SEGMENT, else the namespace's segment, else (no K8S_POD_NAMESPACE) the config's", () => {
  const s = stateDir('{"namespaces": {"default": 100}}');
  try {
    const c = conf({ segment: 7, agent: { stateDir: s.dir } });
    const cfg = parseConfig(c);
    const seg = (args: Record<string, string>) => agentSegmentOf(cniRequest("ADD", c, { args }), cfg, cfg.agent!);
    assert.is(seg({ K8S_POD_NAMESPACE: "default" }), 100);
    assert.is(seg({ K8S_POD_NAMESPACE: "default", OVSPLANE_SEGMENT: "300" }), 300);
    assert.is(seg({ K8S_POD_NAMESPACE: "missing", OVSPLANE_SEGMENT: "300" }), 300);
    assert.is(seg({}), 7);
    fails(() => seg({ K8S_POD_NAMESPACE: "missing" }), 11, "namespace missing");
    fails(() => seg({ OVSPLANE_SEGMENT: "0" }), 4, "OVSPLANE_SEGMENT");
  } finally {
    s.done();
  }
});

test.run();
