// OVS node state through OVSDB: the bridge, tunnel and gateway ports, and pod ports found by their tags.
import { CniError, Code, alreadyExists } from "../cni/errors.ts";
import { BadTags, decodeTags, PortRole, Tag, type Attachment } from "../dataplane/attachment.ts";
import { mapToObject, namedUuid, ovsMap, ovsSet, OvsdbError, setToArray, uuid, uuidOf, waitForCurCfg, type Op, type OvsdbClient } from "../ovs/ovsdb.ts";

/** The shared node state a bridge needs. */
export interface NodeSpec {
  bridge: string;
  datapathType: "system" | "netdev";
  tunnel: { name: string; localIP: string; dstPort: number };
  gateway: { name: string; mac: string };
}

/** A port to add, with its tags. */
export interface PortSpec {
  name: string;
  externalIds: Record<string, string>;
}

/** OpenFlow port numbers after a reconcile. */
export interface Ofports {
  tunnel: number;
  gateway: number;
  pod?: number;
}

/** A port of ours, as found in OVSDB, with the attachment its tags describe. */
export interface TaggedPort {
  uuid: string;
  name: string;
  externalIds: Record<string, string>;
  /** The network the port belongs to (its network tag). */
  network?: string;
  /** The pod attachment, when the tags describe a whole one. */
  attachment?: Attachment;
  /** Why the tags do not describe a whole attachment, when they are ours but broken. */
  tagError?: string;
}

/** A port row read into a TaggedPort (tags decoded once, here). */
function taggedPort(uuid: string, name: string, externalIds: Record<string, string>): TaggedPort {
  const p: TaggedPort = { uuid, name, externalIds };
  const network = externalIds[Tag.Network];
  if (network !== undefined) p.network = network;
  try {
    const a = decodeTags(name, externalIds);
    if (a) p.attachment = a;
  } catch (e) {
    if (!(e instanceof BadTags)) throw e;
    p.tagError = e.message;
  }
  return p;
}

const byName = (name: string) => [["name", "==", name]];

function ifaceRow(name: string, extra: Record<string, unknown>): Record<string, unknown> {
  return { name, ...extra };
}

/** Inserts rows for one port (Interface + Port) and returns its named-uuid. */
function insertPort(ops: Op[], key: string, iface: Record<string, unknown>, externalIds: Record<string, string>): unknown {
  ops.push({ op: "insert", table: "Interface", row: { ...iface, external_ids: ovsMap(externalIds) }, "uuid-name": `${key}if` });
  ops.push({
    op: "insert",
    table: "Port",
    row: { name: iface.name, interfaces: namedUuid(`${key}if`), external_ids: ovsMap(externalIds) },
    "uuid-name": `${key}port`,
  });
  return namedUuid(`${key}port`);
}

/**
 * Creates what is missing of the bridge, tunnel port and gateway port, reconciles the tunnel's
 * options, adds the pod's port, and waits until ovs-vswitchd has applied it (code 11 on timeout).
 */
export async function ensureNode(c: OvsdbClient, node: NodeSpec, pod: PortSpec | undefined, timeoutMs: number): Promise<Ofports> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await tryEnsure(c, node, pod, timeoutMs);
    } catch (e) {
      // A concurrent ADD created the same shared row first: read again and go on.
      if (e instanceof OvsdbError && /constraint violation|referential/i.test(e.message) && attempt < 5) continue;
      throw e;
    }
  }
}

async function tryEnsure(c: OvsdbClient, node: NodeSpec, pod: PortSpec | undefined, timeoutMs: number): Promise<Ofports> {
  const [br, tun, gw, podIf] = await c.transact([
    { op: "select", table: "Bridge", where: byName(node.bridge), columns: ["_uuid", "protocols"] },
    { op: "select", table: "Interface", where: byName(node.tunnel.name), columns: ["_uuid", "options"] },
    { op: "select", table: "Interface", where: byName(node.gateway.name), columns: ["_uuid"] },
    ...(pod ? [{ op: "select", table: "Interface", where: byName(pod.name), columns: ["_uuid"] }] : []),
  ]);
  if (pod && podIf.rows.length) throw alreadyExists(`OVS port ${pod.name}`);
  const ops: Op[] = [];
  const newPorts: unknown[] = [];
  const tunOptions: Record<string, string> = {
    remote_ip: "flow",
    key: "flow",
    dst_port: String(node.tunnel.dstPort),
    local_ip: node.tunnel.localIP,
  };
  if (!tun.rows.length) {
    newPorts.push(insertPort(ops, "tun", ifaceRow(node.tunnel.name, { type: "vxlan", options: ovsMap(tunOptions) }), { [Tag.Role]: PortRole.Tunnel }));
  } else {
    const cur = mapToObject(tun.rows[0].options);
    if (JSON.stringify(cur, Object.keys(cur).sort()) !== JSON.stringify(tunOptions, Object.keys(tunOptions).sort())) {
      ops.push({ op: "update", table: "Interface", where: byName(node.tunnel.name), row: { options: ovsMap(tunOptions) } });
    }
  }
  if (!gw.rows.length) {
    newPorts.push(insertPort(ops, "gw", ifaceRow(node.gateway.name, { type: "internal", mac: node.gateway.mac }), { [Tag.Role]: PortRole.Gateway }));
  }
  if (pod) newPorts.push(insertPort(ops, "pod", ifaceRow(pod.name, {}), pod.externalIds));
  if (!br.rows.length) {
    ops.push({ op: "insert", table: "Interface", row: { name: node.bridge, type: "internal" }, "uuid-name": "brif" });
    ops.push({ op: "insert", table: "Port", row: { name: node.bridge, interfaces: namedUuid("brif") }, "uuid-name": "brport" });
    ops.push({
      op: "insert",
      table: "Bridge",
      row: {
        name: node.bridge,
        ports: ["set", [namedUuid("brport"), ...newPorts]],
        datapath_type: node.datapathType,
        fail_mode: "secure",
        protocols: ["set", ["OpenFlow13", "OpenFlow14"]],
        external_ids: ovsMap({ "ovsplane-created": "true" }),
      },
      "uuid-name": "br",
    });
    ops.push({ op: "mutate", table: "Open_vSwitch", where: [], mutations: [["bridges", "insert", ["set", [namedUuid("br")]]]] });
  } else {
    const brUuid = uuid(uuidOf(br.rows[0]._uuid));
    if (newPorts.length) ops.push({ op: "mutate", table: "Bridge", where: [["_uuid", "==", brUuid]], mutations: [["ports", "insert", ["set", newPorts]]] });
    if (setToArray(br.rows[0].protocols).length && !setToArray(br.rows[0].protocols).includes("OpenFlow14")) {
      ops.push({ op: "mutate", table: "Bridge", where: [["_uuid", "==", brUuid]], mutations: [["protocols", "insert", ["set", ["OpenFlow13", "OpenFlow14"]]]] });
    }
  }
  if (ops.length) {
    ops.push({ op: "mutate", table: "Open_vSwitch", where: [], mutations: [["next_cfg", "+=", 1]] });
    ops.push({ op: "select", table: "Open_vSwitch", where: [], columns: ["next_cfg"] });
    const res = await c.transact(ops);
    const nextCfg = Number(res[res.length - 1].rows[0].next_cfg);
    await waitForCurCfg(c, nextCfg, timeoutMs);
  }
  return readOfports(c, node, pod?.name);
}

async function readOfports(c: OvsdbClient, node: NodeSpec, podName?: string): Promise<Ofports> {
  const names = [node.tunnel.name, node.gateway.name, ...(podName ? [podName] : [])];
  const res = await c.transact(names.map((n) => ({ op: "select", table: "Interface", where: byName(n), columns: ["ofport", "error"] })));
  const ports = res.map((r: { rows: Array<{ ofport: unknown; error: unknown }> }, i: number) => {
    const row = r.rows[0];
    const ofport = row ? setToArray(row.ofport)[0] : undefined;
    if (typeof ofport !== "number" || ofport <= 0) {
      const err = row ? setToArray(row.error)[0] : "no such interface";
      throw new CniError(Code.StepFailed, `OVS could not attach ${names[i]}: ${String(err ?? "no OpenFlow port number")}`);
    }
    return ofport;
  });
  const out: Ofports = { tunnel: ports[0]!, gateway: ports[1]! };
  if (podName) out.pod = ports[2]!;
  return out;
}

/** Pod ports of one network (found by the network tag), or of every network when none is given. */
export async function listPorts(c: OvsdbClient, network?: string): Promise<TaggedPort[]> {
  const where = network === undefined ? [] : [["external_ids", "includes", ovsMap({ [Tag.Network]: network })]];
  const [res] = await c.transact([{ op: "select", table: "Port", where, columns: ["_uuid", "name", "external_ids"] }]);
  const ports: TaggedPort[] = res.rows.map((r: { _uuid: unknown; name: string; external_ids: unknown }) =>
    taggedPort(uuidOf(r._uuid), r.name, mapToObject(r.external_ids)),
  );
  return ports.filter((p) => p.network !== undefined);
}

/** One port by name with its tags and OpenFlow port, or undefined. */
export async function findPort(c: OvsdbClient, name: string): Promise<(TaggedPort & { ofport?: number }) | undefined> {
  const [p, i] = await c.transact([
    { op: "select", table: "Port", where: byName(name), columns: ["_uuid", "name", "external_ids"] },
    { op: "select", table: "Interface", where: byName(name), columns: ["ofport"] },
  ]);
  const row = p.rows[0];
  if (!row) return undefined;
  const ofport = i.rows[0] ? setToArray(i.rows[0].ofport)[0] : undefined;
  const out: TaggedPort & { ofport?: number } = taggedPort(uuidOf(row._uuid), row.name, mapToObject(row.external_ids));
  if (typeof ofport === "number") out.ofport = ofport;
  return out;
}

/** Removes ports (by Port uuid) from whichever bridge holds them; missing ones are fine. */
export async function deletePorts(c: OvsdbClient, portUuids: readonly string[]): Promise<void> {
  if (!portUuids.length) return;
  const refs = portUuids.map((u) => uuid(u));
  await c.transact([{ op: "mutate", table: "Bridge", where: [], mutations: [["ports", "delete", ["set", refs]]] }]);
}

/** In one round trip: whether a port of that name exists, and whether the bridge does. */
export async function preflight(c: OvsdbClient, portName: string, bridge: string): Promise<{ port: boolean; bridge: boolean; bridgeIds: Record<string, string> }> {
  const [p, b] = await c.transact([
    { op: "select", table: "Port", where: byName(portName), columns: ["_uuid"] },
    { op: "select", table: "Bridge", where: byName(bridge), columns: ["_uuid", "external_ids"] },
  ]);
  return { port: p.rows.length > 0, bridge: b.rows.length > 0, bridgeIds: b.rows[0] ? mapToObject(b.rows[0].external_ids) : {} };
}

/** The bridge's external_ids (empty when there is no such bridge). */
export async function bridgeIds(c: OvsdbClient, bridge: string): Promise<Record<string, string>> {
  const [b] = await c.transact([{ op: "select", table: "Bridge", where: byName(bridge), columns: ["external_ids"] }]);
  return b.rows[0] ? mapToObject(b.rows[0].external_ids) : {};
}

/** Sets (or, with undefined, removes) one external_id of the bridge. */
export async function setBridgeId(c: OvsdbClient, bridge: string, key: string, value: string | undefined): Promise<void> {
  const mutations: unknown[] = [["external_ids", "delete", ovsSet([key])]];
  if (value !== undefined) mutations.push(["external_ids", "insert", ovsMap({ [key]: value })]);
  await c.transact([{ op: "mutate", table: "Bridge", where: byName(bridge), mutations }]);
}

/** True when the bridge exists in OVSDB. */
export async function bridgeExists(c: OvsdbClient, bridge: string): Promise<boolean> {
  const [r] = await c.transact([{ op: "select", table: "Bridge", where: byName(bridge), columns: ["_uuid"] }]);
  return r.rows.length > 0;
}

/** Sets tags (external_ids keys) on a pod port and its interface, by name, in one transaction; other keys stay. */
export async function setPortTags(c: OvsdbClient, name: string, tags: Record<string, string>): Promise<void> {
  const mutations = [
    ["external_ids", "delete", ovsSet(Object.keys(tags))],
    ["external_ids", "insert", ovsMap(tags)],
  ];
  await c.transact([
    { op: "mutate", table: "Port", where: byName(name), mutations },
    { op: "mutate", table: "Interface", where: byName(name), mutations },
  ]);
}
