// Names the CNI spec constrains: container IDs, network names and interface names.
import { invalidEnv } from "./errors.ts";

/** Container IDs, network names: the spec's pattern, which also keeps them safe in paths. */
export const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** Checks CNI_IFNAME the way the kernel and the spec want it. */
export function validateIfname(name: string | undefined): string {
  if (!name) throw invalidEnv("CNI_IFNAME", name, "required");
  if (name.length > 15) throw invalidEnv("CNI_IFNAME", name, "longer than 15 characters");
  if (name === "." || name === ".." || /[/:\s]/.test(name)) throw invalidEnv("CNI_IFNAME", name, "not a valid interface name");
  return name;
}
