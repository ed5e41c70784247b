// The few declarations of Bun's `bun:ffi` that lib/host/netlink/socket.ts uses (the project does not carry bun-types).
declare module "bun:ffi" {
  /** A C function's signature: argument and return types by FFIType name. */
  interface FFIFunction {
    args: readonly string[];
    returns: string;
  }
  /** Opens a shared library and binds the named functions. */
  export function dlopen<T extends Record<string, FFIFunction>>(path: string, symbols: T): { symbols: { [K in keyof T]: (...args: never[]) => number }; close(): void };
  /** The address of a typed array's bytes. */
  export function ptr(view: ArrayBufferView): number;
  /** Reads memory at an address. */
  export const read: { i32(address: number, offset?: number): number };
}
