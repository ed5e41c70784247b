// Unit tests of the kube-proxy stand-in (test/harness/kubeproxy.ts): chain names and the full rule text.
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  endpointChainName, externalChainName, kubeProxyJumps, kubeProxyRules, masqueradeMark, serviceChainName, type KubeProxyService,
} from "../harness/kubeproxy.ts";

// ns4/svc4:p80 of kube-proxy's TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go), with a NodePort.
const svc4: KubeProxyService = {
  namespace: "ns4", name: "svc4", portName: "p80", clusterIP: "172.30.0.44", port: 80, protocol: "tcp", nodePort: 3003,
  endpoints: [{ ip: "10.180.0.4", port: 80 }, { ip: "10.180.0.5", port: 80 }],
};

test("chain names are kube-proxy's (sha256, base32, 16 chars)", () => {
  assert.is(serviceChainName({ ...svc4, namespace: "ns1", name: "svc1" }), "KUBE-SVC-XPGD46QRK7WJZT7O");
  assert.is(endpointChainName({ ...svc4, namespace: "ns1", name: "svc1" }, { ip: "10.180.0.1", port: 80 }), "KUBE-SEP-SXIVWICOYRO3J4NJ");
  assert.is(serviceChainName(svc4), "KUBE-SVC-4SW47YFZTEDKD3PK");
  assert.is(externalChainName(svc4), "KUBE-EXT-4SW47YFZTEDKD3PK");
  assert.is(endpointChainName(svc4, svc4.endpoints[0]!), "KUBE-SEP-UKSFD7AGPMPPLUHC");
  assert.is(endpointChainName(svc4, svc4.endpoints[1]!), "KUBE-SEP-C6EBXVWJJZMIWKLZ");
});

test("the mark is Go's %#08x of 1<<bit", () => {
  assert.is(masqueradeMark(), "0x00004000");
  assert.is(masqueradeMark(15), "0x00008000");
});

test("one service, two endpoints, a NodePort: the exact restore text", () => {
  const expected = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FIREWALL - [0:0]
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-NODEPORTS -m comment --comment ns4/svc4:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
COMMIT
`;
  assert.fixture(kubeProxyRules({ clusterCIDR: "10.0.0.0/8", services: [svc4] }).restore, expected);
});

test("three endpoints get 1/3, 1/2, then an unconditional jump", () => {
  const svc = { ...svc4, endpoints: [...svc4.endpoints, { ip: "10.180.0.6", port: 80 }] };
  const lines = kubeProxyRules({ clusterCIDR: "10.0.0.0/8", services: [svc] }).restore.split("\n").filter((l) => l.startsWith(`-A ${serviceChainName(svc)} `) && l.includes(" -> "));
  assert.equal(lines.map((l) => / --probability (\S+)/.exec(l)?.[1] ?? "last"), ["0.3333333333", "0.5000000000", "last"]);
});

test("no endpoints: REJECT in filter, no nat chains; stale service chains are deleted", () => {
  const empty = { ...svc4, endpoints: [] };
  const r = kubeProxyRules({ clusterCIDR: "10.0.0.0/8", services: [empty], existingNatChains: ["KUBE-SVC-OLDOLDOLDOLDOLDO", "KUBE-SERVICES", "FOREIGN"] }).restore;
  assert.ok(r.includes(`-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j REJECT`));
  assert.ok(r.includes(`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns4/svc4:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3003 -j REJECT`));
  assert.not.ok(r.includes(":KUBE-SVC-4SW47YFZTEDKD3PK"));
  assert.ok(r.includes(":KUBE-SVC-OLDOLDOLDOLDOLDO - [0:0]") && r.includes("-X KUBE-SVC-OLDOLDOLDOLDOLDO"));
  assert.not.ok(r.includes("FOREIGN"), "chains that are not kube-proxy's are left alone");
});

test("no cluster CIDR: no ClusterIP masquerade rule; nodeIPs: per-address NodePort jumps", () => {
  const r = kubeProxyRules({ nodeIPs: ["198.18.0.1"], services: [svc4] }).restore;
  assert.not.ok(r.includes("! -s "));
  assert.ok(r.includes(`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 198.18.0.1 -j KUBE-NODEPORTS`));
  assert.not.ok(r.includes(":KUBE-FIREWALL"), "no localhost NodePorts without 127.0.0.1 in nodeIPs");
});

test("jump rules: nat PREROUTING/OUTPUT to KUBE-SERVICES, POSTROUTING to KUBE-POSTROUTING", () => {
  const nat = kubeProxyJumps().filter((j) => j.table === "nat").map((j) => `${j.chain} ${j.args.join(" ")}`);
  assert.equal(nat, [
    "OUTPUT -m comment --comment kubernetes service portals -j KUBE-SERVICES",
    "PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES",
    "POSTROUTING -m comment --comment kubernetes postrouting rules -j KUBE-POSTROUTING",
  ]);
});

test.run();
