// The type name of ovsplane's IPAM plugin, importable without loading the plugin.

/** ipam.type of ovsplane-ipam: ovsplane runs it in-process, and neither entry needs CNI_PATH to find it. */
export const IPAM_TYPE = "ovsplane-ipam";
