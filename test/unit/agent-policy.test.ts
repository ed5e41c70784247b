// Unit tests of the agent's policy side: API objects (plain JSON) as the model, local pods from port tags, recompiling only when an input changed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { localPodsOf, PolicyCompiler, podInfoOf, policyOf, type PolicyWatch } from "../../lib/agent/policy.ts";
import type { PodPort } from "../../lib/agent/model.ts";
import { parsePolicyReport } from "../../lib/policy/report.ts";

const NP = {
  metadata: { name: "web", namespace: "shop" },
  spec: {
    podSelector: { matchLabels: { app: "web" } },
    ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "x" } }, podSelector: {} }, { ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }], ports: [{ port: "http" }, { protocol: "UDP", port: 53, endPort: 60 }] }],
    egress: [{ to: [{ podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["db"] }] } }] }],
  },
};
const POD = {
  metadata: { name: "w1", namespace: "shop", labels: { app: "web" } },
  spec: { nodeName: "a", containers: [{ name: "c", ports: [{ name: "http", containerPort: 8080 }, { containerPort: 9 }, { name: "dns", containerPort: 53, protocol: "UDP" }] }] },
  status: { podIP: "10.244.1.5", podIPs: [{ ip: "10.244.1.5" }, { ip: "fd00::5" }] },
};

test("policyOf: plain JSON (from/to) as the model, TCP by default, no policyTypes when none are given", () => {
  assert.equal(policyOf(NP as never), {
    namespace: "shop", name: "web", podSelector: { matchLabels: { app: "web" } },
    ingress: [{
      peers: [{ namespaceSelector: { matchLabels: { team: "x" } }, podSelector: {} }, { ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } }],
      ports: [{ protocol: "TCP", port: "http" }, { protocol: "UDP", port: 53, endPort: 60 }],
    }],
    egress: [{ peers: [{ podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["db"] }] } }] }],
  });
});

test("podInfoOf: IPv4 address, named ports only, no address for a hostNetwork pod", () => {
  assert.equal(podInfoOf(POD as never), {
    namespace: "shop", name: "w1", labels: { app: "web" }, ip: "10.244.1.5", node: "a",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }, { name: "dns", port: 53, protocol: "UDP" }],
  });
  assert.is(podInfoOf({ ...POD, spec: { ...POD.spec, hostNetwork: true } } as never).ip, undefined);
});

const port = (ns: string | undefined, name: string | undefined, ofport: number, network = "podnet"): PodPort => ({
  ofport,
  attachment: { network, containerID: `c${ofport}`, ifname: "eth0", netns: "", segment: 1, ips: [`10.244.1.${ofport}/24`], mac: "0a:00:00:00:00:01", ...(ns ? { podNamespace: ns } : {}), ...(name ? { podName: name } : {}) },
});

test("localPodsOf: the network's attachments with a Pod name, an address and an OpenFlow port", () => {
  const ports = [port("shop", "w1", 5), port(undefined, undefined, 6), port("shop", "w2", -1), port("shop", "w3", 7, "other")];
  assert.equal(localPodsOf("podnet", ports), [{ ofport: 5, ip: "10.244.1.5", namespace: "shop", name: "w1" }]);
});

/** A PolicyWatch stand-in over fixed lists. */
function fakeWatch(policies: unknown[], pods: unknown[]): PolicyWatch {
  return { synced: true, generation: 1, policies: { list: () => policies }, pods: { list: () => pods } } as unknown as PolicyWatch;
}

test("PolicyCompiler: nothing until listed; changed until applied; a Node event (same generation) reuses the compile; policies.json written once applied", () => {
  const dir = mkdtempSync("/tmp/ovsp-policy-unit-");
  try {
    const c = new PolicyCompiler(dir);
    const ports = [port("shop", "w1", 5)];
    assert.is(c.want({ synced: false } as unknown as PolicyWatch, [], "podnet", ports), undefined);
    const w = fakeWatch([NP], [POD]);
    const first = c.want(w, [], "podnet", ports)!;
    assert.ok(first.changed);
    assert.ok(first.flows.length > 0);
    first.applied();
    const again = c.want(w, [], "podnet", ports)!;
    assert.not.ok(again.changed, "same inputs: nothing to write");
    assert.is(again.compiled, first.compiled, "not recompiled");
    const report = parsePolicyReport(readFileSync(join(dir, "policies.json"), "utf8"))!;
    assert.equal(report.selected, { "shop/w1": ["shop/web"] });
    (w as { generation: number }).generation++;
    const relabelled = fakeWatch([NP], [{ ...POD, metadata: { ...POD.metadata, labels: { app: "other" } } }]);
    (relabelled as { generation: number }).generation = 2;
    const moved = c.want(relabelled, [], "podnet", ports)!;
    assert.ok(moved.changed);
    assert.equal(moved.flows, [], "no local pod selected any more");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
