// Unit tests of request building in the shared dispatcher: every env/stdin refusal and its code, and errors' causes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CniError, stepFailed } from "../../lib/cni/errors.ts";
import { validateIfname } from "../../lib/cni/names.ts";
import { buildRequest } from "../../lib/cni/skel.ts";
import { SUPPORTED_VERSIONS } from "../../lib/cni/version.ts";
import type { CniRequest, Result } from "../../lib/cni/types.ts";
import { CNI_ENV as ENV, confText as stdin, fails } from "./helpers.ts";

type Cmd = CniRequest["command"];

/** The IPAM types the ovsplane entry runs itself (the dispatcher knows no plugin names). */
const BUILTIN_IPAM = ["ovsplane-ipam"];

function build(command: Cmd, env: Record<string, string | undefined> = {}, text = stdin(), known: readonly string[] = []): CniRequest {
  return buildRequest(command, { ...ENV, ...env }, text, { knownArgs: known, builtinIpam: BUILTIN_IPAM });
}

test("a valid ADD request", () => {
  const r = build("ADD", { CNI_ARGS: "IgnoreUnknown=1;FOO=bar=baz" });
  assert.is(r.command, "ADD");
  assert.is(r.containerID, "c0ffee");
  assert.is(r.netns, "/var/run/netns/p1");
  assert.is(r.ifname, "eth0");
  assert.equal(r.args, { IgnoreUnknown: "1", FOO: "bar=baz" });
  assert.is(r.rawArgs, "IgnoreUnknown=1;FOO=bar=baz");
  assert.equal(r.path, ["/opt/cni/bin"]);
  assert.is(r.stdin, stdin());
  assert.is(r.conf.name, "net1");
  assert.is(r.prevResult, undefined);
  assert.equal(build("ADD", { CNI_PATH: "/a::/b:" }).path, ["/a", "/b"]);
});

test("stdin that is not JSON, or not an object: code 6", () => {
  fails(() => build("ADD", {}, "{not json"), 6, "not JSON");
  fails(() => build("ADD", {}, ""), 6);
  fails(() => build("ADD", {}, "[1,2]"), 6, "not a JSON object");
  fails(() => build("ADD", {}, "null"), 6);
  fails(() => build("ADD", {}, '"text"'), 6);
});

test("unknown cniVersion: code 1 with the supported list in details", () => {
  const e = fails(() => build("ADD", {}, stdin({ cniVersion: "0.5.0" })), 1, '"0.5.0"');
  assert.is(e.details, `supported versions: ${SUPPORTED_VERSIONS.join(", ")}`);
  fails(() => build("ADD", {}, stdin({ cniVersion: 1 })), 1, '"1"');
  fails(() => build("ADD", {}, stdin({ cniVersion: "1.1" })), 1);
});

test("every supported version is accepted for ADD", () => {
  for (const v of SUPPORTED_VERSIONS) assert.is(build("ADD", {}, stdin({ cniVersion: v })).conf.cniVersion, v);
});

test("a config without cniVersion is 0.1.0", () => {
  const text = JSON.stringify({ name: "net1", type: "ovsplane", ipam: { type: "host-local" } });
  assert.is(build("ADD", {}, text).conf.cniVersion, "0.1.0");
  assert.is(build("DEL", {}, text).conf.cniVersion, "0.1.0");
  fails(() => build("CHECK", {}, text), 1, "CHECK needs cniVersion 0.4.0");
});

test("CHECK needs 0.4.0, GC and STATUS need 1.1.0: code 1", () => {
  fails(() => build("CHECK", {}, stdin({ cniVersion: "0.3.1" })), 1, '"0.3.1"', "CHECK");
  assert.is(build("CHECK", {}, stdin({ cniVersion: "0.4.0" })).command, "CHECK");
  fails(() => build("GC", {}, stdin({ cniVersion: "1.0.0" })), 1, '"1.0.0"', "GC");
  fails(() => build("STATUS", {}, stdin({ cniVersion: "1.0.0" })), 1, "STATUS");
  assert.is(build("GC", {}, stdin()).command, "GC");
  assert.is(build("STATUS", {}, stdin()).command, "STATUS");
});

test("GC and STATUS need no container env", () => {
  const none = { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined };
  const g = build("GC", none);
  assert.is(g.containerID, "");
  assert.is(g.ifname, "");
  assert.is(build("STATUS", none).netns, "");
});

test("missing or bad CNI_CONTAINERID: code 4", () => {
  for (const c of ["ADD", "DEL", "CHECK"] as const) fails(() => build(c, { CNI_CONTAINERID: undefined }), 4, "CNI_CONTAINERID");
  fails(() => build("ADD", { CNI_CONTAINERID: "" }), 4, "CNI_CONTAINERID");
  fails(() => build("ADD", { CNI_CONTAINERID: "a/b" }), 4, "CNI_CONTAINERID", '"a/b"');
  fails(() => build("DEL", { CNI_CONTAINERID: ".." }), 4, "CNI_CONTAINERID", '".."');
  fails(() => build("ADD", { CNI_CONTAINERID: "../etc" }), 4, "CNI_CONTAINERID");
  fails(() => build("ADD", { CNI_CONTAINERID: "-x" }), 4, "CNI_CONTAINERID");
  assert.is(build("ADD", { CNI_CONTAINERID: "a.b_c-D9" }).containerID, "a.b_c-D9");
});

test("network name with '/' (or missing): code 7", () => {
  fails(() => build("ADD", {}, stdin({ name: "net/1" })), 7, "name", '"net/1"');
  fails(() => build("ADD", {}, stdin({ name: ".." })), 7, "name");
  fails(() => build("ADD", {}, stdin({ name: undefined })), 7, "name");
});

test("CNI_IFNAME: required, at most 15 characters, no '/', not '.'", () => {
  fails(() => build("ADD", { CNI_IFNAME: undefined }), 4, "CNI_IFNAME");
  fails(() => build("ADD", { CNI_IFNAME: "a23456789012345x" }), 4, "CNI_IFNAME", '"a23456789012345x"');
  fails(() => build("ADD", { CNI_IFNAME: "eth/0" }), 4, "CNI_IFNAME", '"eth/0"');
  fails(() => build("ADD", { CNI_IFNAME: "." }), 4, "CNI_IFNAME");
  fails(() => build("DEL", { CNI_IFNAME: ".." }), 4, "CNI_IFNAME");
  fails(() => build("ADD", { CNI_IFNAME: "eth 0" }), 4, "CNI_IFNAME");
  fails(() => build("ADD", { CNI_IFNAME: "eth:0" }), 4, "CNI_IFNAME");
  assert.is(build("ADD", { CNI_IFNAME: "a23456789012345" }).ifname, "a23456789012345");
  assert.is(validateIfname("net1"), "net1");
});

test("CNI_NETNS: required on ADD and CHECK, optional on DEL", () => {
  fails(() => build("ADD", { CNI_NETNS: undefined }), 4, "CNI_NETNS");
  fails(() => build("CHECK", { CNI_NETNS: "" }), 4, "CNI_NETNS");
  assert.is(build("DEL", { CNI_NETNS: undefined }).netns, "");
});

test("CNI_ARGS: a pair without '=' or with an empty key is code 4", () => {
  fails(() => build("ADD", { CNI_ARGS: "IgnoreUnknown=1;novalue" }), 4, "CNI_ARGS", '"novalue"');
  fails(() => build("ADD", { CNI_ARGS: "=x" }), 4, "CNI_ARGS");
  assert.equal(build("ADD", { CNI_ARGS: "K8S_POD_NAME=a;;" }).args, { K8S_POD_NAME: "a" });
  assert.equal(build("ADD", { CNI_ARGS: "K8S_POD_NAME=" }).args, { K8S_POD_NAME: "" });
});

test("CNI_ARGS: unknown keys are code 4 unless IgnoreUnknown", () => {
  fails(() => build("ADD", { CNI_ARGS: "FOO=1" }), 4, "CNI_ARGS", "FOO");
  fails(() => build("ADD", { CNI_ARGS: "IgnoreUnknown=0;FOO=1" }), 4, "FOO");
  assert.equal(build("ADD", { CNI_ARGS: "IgnoreUnknown=1;FOO=1" }).args, { IgnoreUnknown: "1", FOO: "1" });
  assert.equal(build("ADD", { CNI_ARGS: "IgnoreUnknown=true;FOO=1" }).args.FOO, "1");
  // keys the plugin declares
  assert.equal(build("ADD", { CNI_ARGS: "OVSPLANE_SEGMENT=100" }, stdin(), ["OVSPLANE_SEGMENT"]).args, { OVSPLANE_SEGMENT: "100" });
  fails(() => build("ADD", { CNI_ARGS: "OVSPLANE_SEGMENT=100" }), 4, "OVSPLANE_SEGMENT");
});

test("CNI_ARGS: containerd's and Kubernetes' keys", () => {
  const raw = "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=d";
  const r = build("ADD", { CNI_ARGS: raw });
  assert.equal(r.args, { IgnoreUnknown: "1", K8S_POD_NAMESPACE: "a", K8S_POD_NAME: "b", K8S_POD_INFRA_CONTAINER_ID: "c", K8S_POD_UID: "d" });
  assert.is(r.rawArgs, raw);
  // the Kubernetes keys alone are accepted too
  assert.is(build("ADD", { CNI_ARGS: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b" }).args.K8S_POD_NAME, "b");
});

test("CNI_PATH is required on ADD for an exec'd IPAM plugin, not for the built-in one nor on DEL", () => {
  fails(() => build("ADD", { CNI_PATH: undefined }), 4, "CNI_PATH");
  assert.equal(build("DEL", { CNI_PATH: undefined }).path, []);
  assert.equal(build("ADD", { CNI_PATH: undefined }, stdin({ ipam: { type: "ovsplane-ipam" } })).path, []);
  // the built-in types are the caller's to name
  fails(() => buildRequest("ADD", { ...ENV, CNI_PATH: undefined }, stdin({ ipam: { type: "ovsplane-ipam" } })), 4, "CNI_PATH");
});

test("a prevResult of the 0.2.0 shape is converted to the 1.x shape", () => {
  const prev = {
    cniVersion: "0.2.0",
    ip4: { ip: "10.244.1.5/24", gateway: "10.244.1.1", routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }] },
    dns: { nameservers: ["10.96.0.10"] },
  };
  const r = build("DEL", {}, stdin({ cniVersion: "0.2.0", prevResult: prev }));
  assert.equal(r.prevResult, {
    cniVersion: "0.2.0",
    ips: [{ address: "10.244.1.5/24", gateway: "10.244.1.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.244.1.1" }],
    dns: { nameservers: ["10.96.0.10"] },
  });
});

test("a 1.x prevResult is kept; a non-object prevResult is code 6; null is none", () => {
  const prev: Result = { cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/x" }], ips: [{ address: "10.244.1.5/24", interface: 0 }] };
  assert.equal(build("CHECK", {}, stdin({ prevResult: prev })).prevResult, prev);
  assert.equal(build("CHECK", {}, stdin({ prevResult: { ...prev, cniVersion: "0.4.0", ips: [{ version: "4", address: "10.244.1.5/24" }] } })).prevResult!.ips, [
    { address: "10.244.1.5/24" },
  ]);
  fails(() => build("DEL", {}, stdin({ prevResult: "x" })), 6);
  assert.is(build("DEL", {}, stdin({ prevResult: null })).prevResult, undefined);
});

test("errors keep what they wrap as cause", () => {
  const inner = new Error("inner");
  assert.is(stepFailed("a step", inner).cause, inner);
  const wrapped = stepFailed("outer step", stepFailed("a step", inner));
  assert.is(wrapped.message, "outer step: a step: inner");
  assert.is((wrapped.cause as Error).cause, inner);
  const decode = fails(() => build("ADD", {}, "{not json"), 6);
  assert.instance(decode.cause, SyntaxError);
  assert.not.ok("cause" in new CniError(7, "no cause"));
});

test.run();
