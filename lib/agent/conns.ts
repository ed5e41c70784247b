// The agent's long-lived OVS connections: one OVSDB client and one OpenFlow connection, reused across reconciles.
import { connect, type OvsdbClient } from "../ovs/ovsdb.ts";
import { HeldSwitch } from "../node/flows.ts";
import { OVS_TIMEOUT_MS } from "../node/lock.ts";

/**
 * What a reconcile talks to OVS through. A Node event then costs its round trips only, not a connect,
 * a handshake and a features exchange each time. After a failure the agent resets them and the next
 * reconcile reopens.
 */
export class OvsConnections {
  /** The OpenFlow side (one bridge). */
  readonly sw = new HeldSwitch();
  private db?: { endpoint: string; client: OvsdbClient };

  /** The OVSDB client of endpoint, connected when there is none or it closed. */
  async ovsdb(endpoint: string): Promise<OvsdbClient> {
    if (this.db?.endpoint === endpoint && this.db.client.isOpen) return this.db.client;
    this.db?.client.close();
    this.db = { endpoint, client: await connect(endpoint, { timeoutMs: OVS_TIMEOUT_MS }) };
    return this.db.client;
  }

  /** Closes both (the next use reopens). */
  reset(): void {
    this.db?.client.close();
    this.db = undefined;
    this.sw.close();
  }
}
