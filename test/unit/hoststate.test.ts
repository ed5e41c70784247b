// Unit tests of the host state fingerprint: a peer's Node event changes only the peer-routes part.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { hostFingerprint, hostFingerprintParts, routedRanges, routeLines, type HostSpec } from "../../lib/dataplane/hoststate.ts";

const spec = (peers: string[], clusterRanges?: string[]): HostSpec => ({
  network: "podnet",
  netId: 7n,
  gateways: ["10.250.0.1/24"],
  gatewayIP: "10.250.0.1",
  peers: peers.map((podCIDR, i) => ({ nodeIP: `198.19.0.${i + 1}`, podCIDR })),
  podCIDRs: ["10.250.0.0/24"],
  clusterRanges: clusterRanges ?? ["10.250.0.0/24", ...peers],
  masquerade: true,
});

test("a new peer with a cluster CIDR changes only the peer-routes part", () => {
  const a = hostFingerprintParts(spec(["10.0.1.0/24"], ["10.0.0.0/8"]));
  const b = hostFingerprintParts(spec(["10.0.1.0/24", "10.0.2.0/24"], ["10.0.0.0/8"]));
  assert.is(a.iptables, b.iptables);
  assert.is(a.gateway, b.gateway);
  assert.is.not(a.peers, b.peers);
});

test("without a cluster CIDR the masquerade part follows the peers' ranges; a gateway change changes its part", () => {
  assert.is.not(hostFingerprintParts(spec(["10.0.1.0/24"])).iptables, hostFingerprintParts(spec(["10.0.1.0/24", "10.0.2.0/24"])).iptables);
  const other = { ...spec(["10.0.1.0/24"]), gatewayIP: "10.250.0.254" };
  assert.is.not(hostFingerprintParts(other).gateway, hostFingerprintParts(spec(["10.0.1.0/24"])).gateway);
});

test("with clusterCIDR one route covers every peer inside it; a peer outside it, or no clusterCIDR, is routed on its own", () => {
  const peers = ["10.0.1.0/24", "10.0.2.0/24", "172.16.5.0/24"];
  const withCluster = { ...spec(peers, ["10.0.0.0/8"]), clusterCIDRs: ["10.0.0.0/8"] };
  assert.equal(routedRanges(withCluster), ["10.0.0.0/8", "172.16.5.0/24"]);
  assert.equal(routedRanges(spec(peers)), peers);
  assert.equal(routedRanges({ peers: [{ nodeIP: "fd00::2", podCIDR: "fd10:0:1::/64" }], clusterCIDRs: ["fd10::/32"] }), ["fd10::/32"]);
  const lines = routeLines(withCluster).filter((l) => l.startsWith("route "));
  assert.equal(lines.map((l) => l.split(" ")[2]), ["10.250.0.0/24", "10.0.0.0/8", "172.16.5.0/24"]);
  // A new peer inside the cluster range changes no route, so no part of the fingerprint.
  const more = { ...withCluster, peers: [...withCluster.peers, { nodeIP: "198.19.0.9", podCIDR: "10.0.9.0/24" }] };
  assert.is(hostFingerprint(more), hostFingerprint(withCluster));
});

test("the fingerprint is its three parts; a peer's address alone does not change it (routes go via the gateway)", () => {
  const s = spec(["10.0.1.0/24"], ["10.0.0.0/8"]);
  const p = hostFingerprintParts(s);
  assert.is(hostFingerprint(s), `${p.iptables}-${p.gateway}-${p.peers}`);
  assert.is(hostFingerprint({ ...s, peers: [{ nodeIP: "198.19.9.9", podCIDR: "10.0.1.0/24" }] }), hostFingerprint(s));
});

test.run();
