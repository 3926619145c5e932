/**
 * JSON for machine-readable output: one object per line. Values that came over msgpack may hold
 * bigints and byte arrays, which `JSON.stringify` rejects or mangles (a Buffer becomes
 * `{type,data}`); they become a decimal string and base64 text.
 */
import { Encoding } from "effect"

// `this[key]` is the value before any toJSON ran, so a Buffer is still a Uint8Array here.
function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key]
  if (typeof raw === "bigint") return raw.toString()
  if (raw instanceof Uint8Array) return Encoding.encodeBase64(raw)
  return value
}

/** One line of JSON (no newline inside it). */
export const line = (value: unknown): string => JSON.stringify(value, replacer) ?? "null"
