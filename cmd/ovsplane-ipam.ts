// ovsplane-ipam executable: the host-local compatible IPAM plugin behind the shared CNI dispatcher.
import { dispatch } from "../lib/cni/skel.ts";
import { IPAM_ARGS, ipamPlugin } from "../lib/ipam/plugin.ts";

void dispatch(ipamPlugin, { about: "ovsplane-ipam: host-local compatible IP address management for ovsplane", knownArgs: IPAM_ARGS });
