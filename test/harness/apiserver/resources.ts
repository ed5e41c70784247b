// The resources the fake API server serves, their discovery documents, and Status error objects as the real server writes them.

/** One served resource: where it lives and how discovery describes it. */
export interface ResourceInfo {
  /** API group ("" for core). */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Has a `/status` subresource: main-resource writes keep the stored status, status writes keep everything else. */
  readonly status: boolean;
  /** metadata.generation is set to 1 on create and bumped when spec changes. */
  readonly generation: boolean;
  /** Fields usable in a fieldSelector besides metadata.name and metadata.namespace (the real server rejects others). */
  readonly fields: readonly string[];
  readonly categories: readonly string[];
}

/** The resources served: core/v1 nodes, namespaces, pods, services; networking.k8s.io/v1 networkpolicies; discovery.k8s.io/v1 endpointslices. */
export const RESOURCES = {
  nodes: {
    group: "", version: "v1", kind: "Node", singular: "node", namespaced: false, shortNames: ["no"], status: true, generation: false,
    fields: ["spec.unschedulable"], categories: [],
  },
  namespaces: {
    group: "", version: "v1", kind: "Namespace", singular: "namespace", namespaced: false, shortNames: ["ns"], status: true, generation: false,
    fields: ["status.phase"], categories: [],
  },
  pods: {
    group: "", version: "v1", kind: "Pod", singular: "pod", namespaced: true, shortNames: ["po"], status: true, generation: false,
    fields: ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"],
    categories: ["all"],
  },
  services: {
    group: "", version: "v1", kind: "Service", singular: "service", namespaced: true, shortNames: ["svc"], status: true, generation: false,
    fields: [], categories: ["all"],
  },
  endpointslices: {
    group: "discovery.k8s.io", version: "v1", kind: "EndpointSlice", singular: "endpointslice", namespaced: true, shortNames: [], status: false, generation: true,
    fields: [], categories: [],
  },
  networkpolicies: {
    group: "networking.k8s.io", version: "v1", kind: "NetworkPolicy", singular: "networkpolicy", namespaced: true, shortNames: ["netpol"], status: false, generation: true,
    fields: [], categories: [],
  },
} as const satisfies Record<string, ResourceInfo>;

/** Name of a served resource (the plural, as in URLs). */
export type ResourceName = keyof typeof RESOURCES;

/** All served resource names. */
export const RESOURCE_NAMES = Object.keys(RESOURCES) as ResourceName[];

/** True when name is a served resource. */
export function isResource(name: string): name is ResourceName {
  return Object.hasOwn(RESOURCES, name);
}

/** The `apiVersion` of a resource's objects ("v1", "networking.k8s.io/v1"). */
export function apiVersionOf(r: ResourceName): string {
  const i: ResourceInfo = RESOURCES[r];
  return i.group ? `${i.group}/${i.version}` : i.version;
}

/** Version reported by /version (kubectl prints it; clients only check that it parses). */
export const SERVER_VERSION = {
  major: "1", minor: "32", gitVersion: "v1.32.0-ovsplane-fake", gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean", buildDate: "2026-01-01T00:00:00Z", goVersion: "go1.23.0", compiler: "gc", platform: "linux/amd64",
} as const;

const VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"] as const;

/** The APIResourceList of one group version (`/api/v1`, `/apis/networking.k8s.io/v1`). */
export function resourceList(groupVersion: string): Record<string, unknown> | undefined {
  const resources: Record<string, unknown>[] = [];
  for (const name of RESOURCE_NAMES) {
    const i: ResourceInfo = RESOURCES[name];
    if (apiVersionOf(name) !== groupVersion) continue;
    resources.push({
      name, singularName: i.singular, namespaced: i.namespaced, kind: i.kind, verbs: [...VERBS],
      ...(i.shortNames.length ? { shortNames: [...i.shortNames] } : {}), ...(i.categories.length ? { categories: [...i.categories] } : {}),
      storageVersionHash: Buffer.from(`${groupVersion}/${name}`).toString("base64").slice(0, 11),
    });
    if (i.status) resources.push({ name: `${name}/status`, singularName: "", namespaced: i.namespaced, kind: i.kind, verbs: ["get", "patch", "update"] });
  }
  if (!resources.length) return undefined;
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion, resources };
}

/** The APIGroup document of a named group, or undefined. */
export function apiGroup(group: string): Record<string, unknown> | undefined {
  const versions = [...new Set(RESOURCE_NAMES.filter((r) => RESOURCES[r].group === group && group).map((r) => RESOURCES[r].version))];
  if (!versions.length) return undefined;
  const v = versions.map((version) => ({ groupVersion: `${group}/${version}`, version }));
  return { kind: "APIGroup", apiVersion: "v1", name: group, versions: v, preferredVersion: v[0] };
}

/** The `/apis` APIGroupList. */
export function apiGroupList(): Record<string, unknown> {
  const groups = [...new Set(RESOURCE_NAMES.map((r) => RESOURCES[r].group).filter((g) => g))].map((g) => {
    const d = apiGroup(g)!;
    return { name: d.name, versions: d.versions, preferredVersion: d.preferredVersion };
  });
  return { kind: "APIGroupList", apiVersion: "v1", groups };
}

/** The `/api` APIVersions document. */
export function apiVersions(serverAddress: string): Record<string, unknown> {
  return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
}

/** A minimal valid OpenAPI v2 document: kubectl downloads it before create/apply and, finding no schemas, skips validation. */
export const OPENAPI_V2 = { swagger: "2.0", info: { title: "Kubernetes", version: SERVER_VERSION.gitVersion }, paths: {}, definitions: {} } as const;

/** The same document as OpenAPI v2 protobuf (gnostic Document{swagger=1, info=2{title=1, version=2}}), which kubectl asks for first. */
export function openapiV2Protobuf(): Buffer {
  const field = (tag: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([(tag << 3) | 2, payload.length]), payload]);
  const info = Buffer.concat([field(1, Buffer.from(OPENAPI_V2.info.title)), field(2, Buffer.from(OPENAPI_V2.info.version))]);
  return Buffer.concat([field(1, Buffer.from(OPENAPI_V2.swagger)), field(2, info)]);
}

/** Content-Type of openapiV2Protobuf. */
export const OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/** Reasons of Status failures used here (metav1.StatusReason values). */
export const Reason = {
  Unauthorized: "Unauthorized", NotFound: "NotFound", AlreadyExists: "AlreadyExists", Conflict: "Conflict", Invalid: "Invalid",
  BadRequest: "BadRequest", MethodNotAllowed: "MethodNotAllowed", Expired: "Expired", UnsupportedMediaType: "UnsupportedMediaType",
} as const;

/** An API error that renders as a Status object with its HTTP code. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The `{"kind":"Status",...}` body. */
  toStatus(): Record<string, unknown> {
    return {
      kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: this.message, reason: this.reason,
      ...(this.details ? { details: this.details } : {}), code: this.code,
    };
  }
}

/** 404 for a named object (`nodes "n1" not found`). */
export function notFound(resource: string, name: string, group = ""): ApiError {
  const qual = group ? `${resource}.${group}` : resource;
  return new ApiError(404, Reason.NotFound, `${qual} "${name}" not found`, { name, ...(group ? { group } : {}), kind: resource });
}
