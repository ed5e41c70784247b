// Shared unit-test helpers.
import * as assert from "uvu/assert";
import { CniError } from "../../lib/errors.ts";

/** Runs fn, expects a CniError with the code whose message names every inMsg, and returns it. */
export function fails(fn: () => unknown, code: number, ...inMsg: string[]): CniError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, CniError);
    const err = e as CniError;
    assert.is(err.code, code, err.message);
    for (const s of inMsg) assert.ok(err.message.includes(s), `${JSON.stringify(err.message)} should name ${JSON.stringify(s)}`);
    return err;
  }
  assert.unreachable(`expected code ${code} naming ${inMsg.join(", ")}`);
  throw new Error("unreachable");
}
