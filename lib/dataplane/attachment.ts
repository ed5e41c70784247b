// The tags ovsplane writes on OVS ports (external_ids): one encoder and one decoder for every reader.

/** external_ids keys ovsplane writes on the ports it creates. */
export const Tag = {
  Network: "ovsplane-network",
  ContainerID: "ovsplane-container-id",
  Ifname: "ovsplane-ifname",
  Netns: "ovsplane-netns",
  Segment: "ovsplane-segment",
  IPs: "ovsplane-ips",
  MAC: "ovsplane-mac",
  PodNamespace: "ovsplane-pod-namespace",
  PodName: "ovsplane-pod-name",
  /** `pinned` when the segment was asked for (CNI_ARGS OVSPLANE_SEGMENT): a Namespace relabel leaves the pod where it is. */
  SegmentSource: "ovsplane-segment-source",
  Role: "ovsplane-role",
} as const;

/** Roles of the node's shared ports. */
export const PortRole = { Tunnel: "tunnel", Gateway: "gateway" } as const;

/** One pod attachment, as its port's tags record it. */
export interface Attachment {
  network: string;
  containerID: string;
  ifname: string;
  netns: string;
  segment: number;
  /** Addresses with prefix length, as in the CNI result. */
  ips: string[];
  mac: string;
  podNamespace?: string;
  podName?: string;
  /** The segment was asked for explicitly (OVSPLANE_SEGMENT), not taken from the pod's namespace. */
  segmentPinned?: boolean;
}

/** The key of an attachment in CNI terms (GC's valid-attachments). */
export function attachmentKey(a: { containerID: string; ifname: string }): string {
  return `${a.containerID}/${a.ifname}`;
}

/** The port tags of an attachment. */
export function encodeTags(a: Attachment): Record<string, string> {
  const t: Record<string, string> = {
    [Tag.Network]: a.network,
    [Tag.ContainerID]: a.containerID,
    [Tag.Ifname]: a.ifname,
    [Tag.Netns]: a.netns,
    [Tag.Segment]: String(a.segment),
    [Tag.IPs]: a.ips.join(","),
    [Tag.MAC]: a.mac,
  };
  if (a.podNamespace) t[Tag.PodNamespace] = a.podNamespace;
  if (a.podName) t[Tag.PodName] = a.podName;
  if (a.segmentPinned) t[Tag.SegmentSource] = "pinned";
  return t;
}

/** Why a port's tags are not a whole attachment. */
export class BadTags extends Error {
  constructor(readonly port: string, what: string) {
    super(`port ${port}: tag ${what}`);
    this.name = "BadTags";
  }
}

/**
 * Reads an attachment back from a port's tags: undefined when the port is not a pod attachment of
 * ours (no network tag), BadTags when it is ours but a tag is missing or malformed.
 */
export function decodeTags(port: string, t: Readonly<Record<string, string>>): Attachment | undefined {
  const network = t[Tag.Network];
  if (network === undefined) return undefined;
  const need = (k: string): string => {
    const v = t[k];
    if (!v) throw new BadTags(port, `${k} missing`);
    return v;
  };
  const segment = Number(need(Tag.Segment));
  if (!Number.isInteger(segment) || segment < 1 || segment > 0xffffff) throw new BadTags(port, `${Tag.Segment}=${t[Tag.Segment]} not a VNI`);
  const a: Attachment = {
    network,
    containerID: need(Tag.ContainerID),
    ifname: need(Tag.Ifname),
    netns: t[Tag.Netns] ?? "",
    segment,
    ips: (t[Tag.IPs] ?? "").split(",").filter(Boolean),
    mac: need(Tag.MAC),
  };
  if (t[Tag.PodNamespace]) a.podNamespace = t[Tag.PodNamespace];
  if (t[Tag.PodName]) a.podName = t[Tag.PodName];
  if (t[Tag.SegmentSource] === "pinned") a.segmentPinned = true;
  return a;
}

/** The attachment's IPv4 address without prefix, or undefined. */
export function ipv4Of(a: Attachment): string | undefined {
  return a.ips.map((i) => i.split("/")[0]!).find((i) => !i.includes(":"));
}
