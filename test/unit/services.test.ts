// Unit tests of the Service model and flows: API objects to ServiceSpecs (ready endpoints, ports by name and protocol), the flows of one Service.
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { serviceSpecsOf } from "../../lib/agent/services.ts";
import { serviceCookie, serviceFlows } from "../../lib/dataplane/services.ts";
import { renderFlow } from "../../lib/ovs/flow-text.ts";

const svc = (name: string, spec: Record<string, unknown>, ns = "default") => ({ metadata: { name, namespace: ns }, spec }) as V1Service;
const slice = (svcName: string, o: { ports: unknown[]; endpoints: unknown[]; addressType?: string; ns?: string; name?: string }) =>
  ({
    metadata: { name: o.name ?? `${svcName}-x`, namespace: o.ns ?? "default", labels: { "kubernetes.io/service-name": svcName } },
    addressType: o.addressType ?? "IPv4", ports: o.ports, endpoints: o.endpoints,
  }) as V1EndpointSlice;
const ep = (ip: string, ready?: boolean) => ({ addresses: [ip], ...(ready === undefined ? {} : { conditions: { ready } }) });

test("ready endpoints only (ready unset counts as ready), ports matched by name and protocol across slices", () => {
  const services = [svc("web", { clusterIP: "10.96.0.10", clusterIPs: ["10.96.0.10"], ports: [
    { name: "http", protocol: "TCP", port: 80, targetPort: "http" }, { name: "dns", protocol: "UDP", port: 53 }, { name: "s", protocol: "SCTP", port: 9 },
  ] })];
  const slices = [
    slice("web", { name: "a", ports: [{ name: "http", protocol: "TCP", port: 8080 }, { name: "dns", protocol: "UDP", port: 5353 }], endpoints: [ep("10.244.1.5"), ep("10.244.1.6", false)] }),
    slice("web", { name: "b", ports: [{ name: "http", protocol: "TCP", port: 8081 }], endpoints: [ep("10.244.2.7", true)] }),
    slice("web", { name: "v6", addressType: "IPv6", ports: [{ name: "http", protocol: "TCP", port: 8080 }], endpoints: [ep("fd00::1")] }),
    slice("web", { name: "other-ns", ns: "x", ports: [{ name: "http", protocol: "TCP", port: 1 }], endpoints: [ep("10.244.9.9")] }),
  ];
  assert.equal(serviceSpecsOf(services, slices), [{
    namespace: "default", name: "web", clusterIPs: ["10.96.0.10"], ports: [
      { protocol: "TCP", port: 80, targets: [{ ip: "10.244.1.5", port: 8080 }, { ip: "10.244.2.7", port: 8081 }] },
      { protocol: "UDP", port: 53, targets: [{ ip: "10.244.1.5", port: 5353 }] },
    ],
  }]);
});

test("headless, ExternalName and IPv6-only Services are not implemented in OVS", () => {
  const services = [
    svc("headless", { clusterIP: "None", ports: [{ port: 80 }] }), svc("ext", { type: "ExternalName", externalName: "x.example" }),
    svc("v6", { clusterIP: "fd00::10", ports: [{ port: 80 }] }),
  ];
  assert.equal(serviceSpecsOf(services, []), []);
});

const PORTS = { gateway: 2, gatewayMAC: "0a:00:00:00:00:01" };

test("one Service's flows: ct(nat) lookup of its ClusterIP, multipath over sorted endpoints, DNAT commit, hairpin to the node", () => {
  const spec = { namespace: "default", name: "web", clusterIPs: ["10.96.0.10"], ports: [
    { protocol: "TCP" as const, port: 80, targets: [{ ip: "10.244.2.7", port: 8080 }, { ip: "10.244.1.5", port: 8080 }, { ip: "10.244.1.5", port: 8080 }] },
    { protocol: "UDP" as const, port: 53, targets: [] },
  ] };
  const flows = serviceFlows(spec, PORTS);
  assert.ok(flows.every((f) => f.cookie === serviceCookie("default", "web")));
  assert.equal(flows.map((f) => renderFlow(f).replace(/cookie=0x[0-9a-f]+,/, "")), [
    "table=20,priority=200,ip,nw_dst=10.96.0.10 actions=ct(zone=28534,table=23,nat)",
    "table=23,priority=200,ip,nw_dst=10.96.0.10,nw_proto=6,tcp_dst=80,ct_state=+new+trk actions=multipath(symmetric_l3l4+udp,0,hrw,2,0,NXM_NX_REG5[]),goto_table:24",
    "table=24,priority=250,ip,nw_src=10.244.1.5,nw_dst=10.96.0.10,nw_proto=6,tcp_dst=80,reg5=0 actions=set_field:0a:00:00:00:00:01->eth_dst,output:2",
    "table=24,priority=200,ip,nw_dst=10.96.0.10,nw_proto=6,tcp_dst=80,reg5=0 actions=ct(commit,zone=28534,table=21,nat(dst=10.244.1.5:8080),exec(set_field:2->ct_mark))",
    "table=24,priority=250,ip,nw_src=10.244.2.7,nw_dst=10.96.0.10,nw_proto=6,tcp_dst=80,reg5=1 actions=set_field:0a:00:00:00:00:01->eth_dst,output:2",
    "table=24,priority=200,ip,nw_dst=10.96.0.10,nw_proto=6,tcp_dst=80,reg5=1 actions=ct(commit,zone=28534,table=21,nat(dst=10.244.2.7:8080),exec(set_field:2->ct_mark))",
  ]);
});

test("a Service without ready endpoints has no flow (the node's kube-proxy REJECTs it)", () => {
  assert.equal(serviceFlows({ namespace: "d", name: "n", clusterIPs: ["10.96.0.1"], ports: [{ protocol: "TCP", port: 80, targets: [] }] }, PORTS), []);
});

test.run();
