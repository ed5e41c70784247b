// Unit tests of the ovsplane network configuration: defaults, every refusal (code 7), the segment from CNI_ARGS.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withPeersFile } from "../../lib/plugin/peersfile.ts";
import { routedRanges } from "../../lib/dataplane/hoststate.ts";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CniError } from "../../lib/cni/errors.ts";
import { clusterRanges, DEFAULTS, MAX_VNI, parseConfig, parseSegment, segmentOf, type OvsplaneConfig } from "../../lib/plugin/config.ts";
import type { CniRequest, NetConf } from "../../lib/cni/types.ts";
import { cniRequest, fails } from "./helpers.ts";

/** A minimal valid configuration, with overrides. */
function conf(over: Record<string, unknown> = {}): NetConf {
  return {
    cniVersion: "1.1.0",
    name: "net1",
    type: "ovsplane",
    ipam: { type: "ovsplane-ipam", ranges: [[{ subnet: "10.244.1.0/24" }]] },
    ...over,
  };
}


/** Expects parseConfig to refuse with code 7 naming the field and value. */
function refuses(over: Record<string, unknown>, field: string, value?: string): CniError {
  return value === undefined ? fails(() => parseConfig(conf(over)), 7, field) : fails(() => parseConfig(conf(over)), 7, field, value);
}

test("defaults of the configuration reference", () => {
  const c = parseConfig(conf());
  assert.equal(c, {
    name: "net1",
    bridge: "br-int",
    datapathType: "system",
    ovsdbSocket: "unix:/var/run/openvswitch/db.sock",
    ofSocket: "unix:/var/run/openvswitch/br-int.mgmt",
    segment: 1,
    tunnel: { dstPort: 4789 },
    peers: [],
    ipamType: "ovsplane-ipam",
    podCIDRs: ["10.244.1.0/24"],
    peerRoutes: [],
    globalSegments: [],
    masquerade: true,
  } satisfies OvsplaneConfig);
  assert.is(DEFAULTS.bridge, "br-int");
  assert.is(MAX_VNI, 16777215);
  assert.not.ok("mtu" in c);
  assert.not.ok("localIP" in c.tunnel);
});

test("peerRoutes: each clusterCIDR, then the peer ranges outside them (as hoststate's routedRanges works them out)", () => {
  const peers = [
    { nodeIP: "198.19.0.1", podCIDR: "10.0.1.0/24" },
    { nodeIP: "198.19.0.2", podCIDR: "172.16.5.0/24" },
    { nodeIP: "198.19.0.3", podCIDR: "10.0.2.0/24" },
  ];
  const c = parseConfig(conf({ peers, clusterCIDR: "10.0.0.0/8" }));
  assert.equal(c.peerRoutes, ["10.0.0.0/8", "172.16.5.0/24"]);
  assert.equal(c.peerRoutes, routedRanges({ peers: c.peers, clusterCIDRs: c.clusterCIDRs! }));
  assert.equal(parseConfig(conf({ peers })).peerRoutes, peers.map((p) => p.podCIDR));
});

test("peersFile: its JSON list becomes the peers (validated as inline ones); unreadable, relative, beside peers or with agent is code 7", () => {
  const dir = mkdtempSync(join(tmpdir(), "peersfile-"));
  try {
    const file = join(dir, "peers.json");
    const peers = [{ nodeIP: "198.19.0.1", podCIDR: "10.0.1.0/24" }, { nodeIP: "198.19.0.2", podCIDR: "10.0.2.0/24" }];
    writeFileSync(file, JSON.stringify(peers));
    const c = parseConfig(withPeersFile(conf({ peers: undefined, peersFile: file, clusterCIDR: "10.0.0.0/8" })));
    assert.equal(c.peers, peers);
    assert.equal(c.peerRoutes, ["10.0.0.0/8"]);
    fails(() => withPeersFile(conf({ peers: undefined, peersFile: join(dir, "missing.json") })), 7, "peersFile", "cannot read it as JSON");
    fails(() => withPeersFile(conf({ peers: undefined, peersFile: "peers.json" })), 7, "peersFile", "absolute path");
    fails(() => withPeersFile(conf({ peers, peersFile: file })), 7, "peersFile", "not both");
    writeFileSync(file, JSON.stringify([{ nodeIP: "198.19.0.1", podCIDR: "10.0.1.0/33" }]));
    fails(() => parseConfig(withPeersFile(conf({ peers: undefined, peersFile: file }))), 7, "peers[0].podCIDR");
    fails(() => parseConfig(conf({ peers: undefined, peersFile: file, agent: { stateDir: "/run/ovsplane" } })), 7, "peersFile", "not with agent");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ofSocket follows the bridge and the ovsdb socket directory", () => {
  const c = parseConfig(conf({ bridge: "br-a", ovsdbSocket: "unix:/run/ovs/nodeA/db.sock" }));
  assert.is(c.ofSocket, "unix:/run/ovs/nodeA/br-a.mgmt");
  const t = parseConfig(conf({ ovsdbSocket: "tcp:127.0.0.1:6640", ofSocket: "tcp:127.0.0.1:6653" }));
  assert.is(t.ovsdbSocket, "tcp:127.0.0.1:6640");
  assert.is(t.ofSocket, "tcp:127.0.0.1:6653");
  assert.is(parseConfig(conf({ ofSocket: "unix:/tmp/x.mgmt" })).ofSocket, "unix:/tmp/x.mgmt");
});

test("explicit values are kept", () => {
  const c = parseConfig(
    conf({
      bridge: "br0",
      datapathType: "netdev",
      segment: 100,
      tunnel: { localIP: "198.18.0.1", dstPort: 8472 },
      peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }],
      mtu: 1450,
    }),
  );
  assert.is(c.bridge, "br0");
  assert.is(c.datapathType, "netdev");
  assert.is(c.segment, 100);
  assert.equal(c.tunnel, { dstPort: 8472, localIP: "198.18.0.1" });
  assert.equal(c.peers, [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }]);
  assert.is(c.mtu, 1450);
  assert.is(parseConfig(conf({ segment: MAX_VNI })).segment, MAX_VNI);
});

test("bad bridge names", () => {
  refuses({ bridge: "br-0123456789abc" }, "bridge", '"br-0123456789abc"');
  refuses({ bridge: "br/int" }, "bridge", '"br/int"');
  refuses({ bridge: "" }, "bridge");
  refuses({ bridge: 7 }, "bridge", "7");
});

test("bad datapathType", () => {
  refuses({ datapathType: "kernel" }, "datapathType", '"kernel"');
});

test("ovsdbSocket must be unix: or tcp:", () => {
  refuses({ ovsdbSocket: "/var/run/openvswitch/db.sock" }, "ovsdbSocket", '"/var/run/openvswitch/db.sock"');
  refuses({ ovsdbSocket: "ssl:1.2.3.4:6640" }, "ovsdbSocket", '"ssl:1.2.3.4:6640"');
  refuses({ ovsdbSocket: "tcp:1.2.3.4" }, "ovsdbSocket", '"tcp:1.2.3.4"');
  refuses({ ofSocket: "punix:/x" }, "ofSocket", '"punix:/x"');
});

test("tcp: ovsdbSocket needs an explicit ofSocket", () => {
  refuses({ ovsdbSocket: "tcp:127.0.0.1:6640" }, "ofSocket");
});

test("segment must be a VNI 1..16777215", () => {
  refuses({ segment: 0 }, "segment", "0");
  refuses({ segment: 16777216 }, "segment", "16777216");
  refuses({ segment: "abc" }, "segment", '"abc"');
  refuses({ segment: 1.5 }, "segment", "1.5");
  refuses({ segment: -3 }, "segment", "-3");
});

test("tunnel.localIP must be IPv4 and dstPort a UDP port", () => {
  refuses({ tunnel: { localIP: "fd00::1" } }, "tunnel.localIP", '"fd00::1"');
  refuses({ tunnel: { localIP: "10.0.0.256" } }, "tunnel.localIP", '"10.0.0.256"');
  refuses({ tunnel: { dstPort: 0 } }, "tunnel.dstPort", "0");
  refuses({ tunnel: { dstPort: 70000 } }, "tunnel.dstPort", "70000");
  refuses({ tunnel: { dstPort: "4789" } }, "tunnel.dstPort", '"4789"');
  refuses({ tunnel: "vxlan" }, "tunnel", '"vxlan"');
});

test("peers: a list of {nodeIP, podCIDR} in IPv4", () => {
  refuses({ peers: { nodeIP: "198.18.0.2" } }, "peers");
  refuses({ peers: [{ nodeIP: "node-b", podCIDR: "10.244.2.0/24" }] }, "peers[0].nodeIP", '"node-b"');
  refuses(
    { peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, { nodeIP: "198.18.0.3", podCIDR: "10.244.3.0/33" }] },
    "peers[1].podCIDR",
    '"10.244.3.0/33"',
  );
  refuses({ peers: [{ nodeIP: "198.18.0.2" }] }, "peers[0].podCIDR");
  refuses({ peers: [{ nodeIP: "198.18.0.2", podCIDR: "fd00:2::/64" }] }, "peers[0].podCIDR", '"fd00:2::/64"');
});

test("peers with overlapping podCIDRs are refused (their flows would shadow each other)", () => {
  const err = refuses(
    { peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, { nodeIP: "198.18.0.3", podCIDR: "10.244.2.0/24" }] },
    "peers[1].podCIDR",
    '"10.244.2.0/24"',
  );
  assert.ok(err.message.includes("peers[0].podCIDR"), err.message);
  refuses(
    { peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, { nodeIP: "198.18.0.3", podCIDR: "10.244.3.0/24" }, { nodeIP: "198.18.0.4", podCIDR: "10.244.0.0/22" }] },
    "peers[2].podCIDR",
    "peers[0].podCIDR",
  );
  // one node with two disjoint ranges is fine
  const c = parseConfig(conf({ peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }, { nodeIP: "198.18.0.2", podCIDR: "10.244.3.0/24" }] }));
  assert.is(c.peers.length, 2);
});

test("peer podCIDR is normalized to its network", () => {
  const c = parseConfig(conf({ peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.7/24" }] }));
  assert.is(c.peers[0]!.podCIDR, "10.244.2.0/24");
});

test("mtu range", () => {
  refuses({ mtu: 575 }, "mtu", "575");
  refuses({ mtu: 65536 }, "mtu", "65536");
  refuses({ mtu: "1450" }, "mtu", '"1450"');
  assert.is(parseConfig(conf({ mtu: 576 })).mtu, 576);
});

test("ipam is required and its type is a plugin name", () => {
  refuses({ ipam: undefined }, "ipam");
  refuses({ ipam: [] }, "ipam");
  refuses({ ipam: { type: "../bin/evil" } }, "ipam.type", '"../bin/evil"');
  refuses({ ipam: { type: "a/b" } }, "ipam.type", '"a/b"');
  refuses({ ipam: {} }, "ipam.type");
});

test("IPv6 subnets are refused", () => {
  refuses({ ipam: { type: "host-local", ranges: [[{ subnet: "10.244.1.0/24" }], [{ subnet: "fd00:1::/64" }]] } }, "ipam.ranges[1][0].subnet", '"fd00:1::/64"');
  refuses({ ipam: { type: "host-local", subnet: "fd00:1::/64" } }, "ipam.subnet", '"fd00:1::/64"');
});

test("a malformed subnet is refused naming it", () => {
  refuses({ ipam: { type: "host-local", ranges: [[{ subnet: "10.244.1.0" }]] } }, "ipam.ranges[0][0].subnet", '"10.244.1.0"');
});

test("an IPAM range overlapping a peer podCIDR is refused", () => {
  const err = refuses(
    {
      peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }],
      ipam: { type: "host-local", ranges: [[{ subnet: "10.244.0.0/16" }]] },
    },
    "ipam.ranges[0][0].subnet",
    '"10.244.0.0/16"',
  );
  assert.ok(err.message.includes("peers[0].podCIDR 10.244.2.0/24"), err.message);
});

test("legacy ipam.subnet is read", () => {
  const c = parseConfig(conf({ ipam: { type: "host-local", subnet: "10.244.1.0/24", gateway: "10.244.1.1" } }));
  assert.equal(c.podCIDRs, ["10.244.1.0/24"]);
  assert.is(c.ipamType, "host-local");
  refuses(
    { peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.1.128/25" }], ipam: { type: "host-local", subnet: "10.244.1.0/24" } },
    "ipam.subnet",
  );
  // ranges win over the legacy field
  const both = parseConfig(conf({ ipam: { type: "host-local", subnet: "10.9.0.0/24", ranges: [[{ subnet: "10.244.1.0/24" }]] } }));
  assert.equal(both.podCIDRs, ["10.244.1.0/24"]);
});

test("an IPAM without subnets (e.g. dhcp) gives no podCIDRs", () => {
  assert.equal(parseConfig(conf({ ipam: { type: "dhcp" } })).podCIDRs, []);
});

const req = (args: Record<string, string>): CniRequest => cniRequest("ADD", conf(), { args });

test("segmentOf: CNI_ARGS OVSPLANE_SEGMENT over the config", () => {
  const cfg = parseConfig(conf({ segment: 7 }));
  assert.is(segmentOf(req({}), cfg), 7);
  assert.is(segmentOf(req({ OVSPLANE_SEGMENT: "100" }), cfg), 100);
  assert.is(segmentOf(req({ OVSPLANE_SEGMENT: "16777215" }), cfg), 16777215);
});

test("segmentOf: an invalid OVSPLANE_SEGMENT is a bad environment (code 4)", () => {
  const cfg = parseConfig(conf());
  for (const v of ["0", "16777216", "abc", "1.5", "", "-1", " 5"]) {
    fails(() => segmentOf(req({ OVSPLANE_SEGMENT: v }), cfg), 4, "CNI_ARGS", `OVSPLANE_SEGMENT=${v}`);
  }
});

test("parseSegment accepts numeric strings from configs", () => {
  assert.is(parseSegment("segment", "42"), 42);
  fails(() => parseSegment("segment", null), 7, "segment");
});

test("globalSegments, masquerade and clusterCIDR of the Kubernetes network model", () => {
  const c = parseConfig(conf({ globalSegments: [1, 7, 1], masquerade: false, clusterCIDR: "10.244.0.0/16" }));
  assert.equal(c.globalSegments, [1, 7]);
  assert.is(c.masquerade, false);
  assert.equal(c.clusterCIDRs, ["10.244.0.0/16"]);
  assert.equal(clusterRanges(c), ["10.244.0.0/16"]);
  const p = parseConfig(conf({ peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }] }));
  assert.equal(clusterRanges(p), ["10.244.1.0/24", "10.244.2.0/24"], "without clusterCIDR: this node's range and its peers'");
  assert.equal(parseConfig(conf({ clusterCIDR: ["10.244.0.0/16", "10.96.0.0/12"] })).clusterCIDRs, ["10.244.0.0/16", "10.96.0.0/12"]);
  refuses({ globalSegments: [0] }, "globalSegments[0]");
  refuses({ globalSegments: "1" }, "globalSegments");
  refuses({ masquerade: "yes" }, "masquerade");
  refuses({ clusterCIDR: "10.244.0.0/33" }, "clusterCIDR");
  refuses({ clusterCIDR: [] }, "clusterCIDR");
});

test("agent mode refuses static peers (the agent takes them from the API)", () => {
  assert.equal(parseConfig(conf({ agent: { stateDir: "/var/run/ovsplane" } })).agent, { stateDir: "/var/run/ovsplane" });
  refuses({ agent: { stateDir: "/var/run/ovsplane" }, peers: [{ nodeIP: "198.18.0.2", podCIDR: "10.244.2.0/24" }] }, "peers");
});

test.run();
