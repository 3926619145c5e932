/** Shared helpers of the ephemeral tests: cheap proof-of-work parameters and message builders. */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as Chain from "../src/Chain.js"
import type { Message } from "../src/Message.js"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import type { Config } from "../src/Validate.js"

/** Parameters that keep solving fast in tests while still growing with TTL and size. */
export const cheapParams: Pow.Params = { workBitsMin: 4, ttlFactor: 0.5, sizeFactor: 0.5 }
export const algorithm = Pow.sha256(cheapParams)
export const algorithms = Pow.registry([algorithm])

/** Deterministic bytes of a label. */
export const bytesOf = (label: string, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  for (let at = 0, block = 0; at < length; at += 32, block++) {
    out.set(createHash("sha256").update(`${label}/${block}`).digest().subarray(0, Math.min(32, length - at)), at)
  }
  return out
}

export const validatorConfig = (overrides: Partial<Config> = {}): Config => ({
  algorithms,
  ttlMax: "1 hour",
  blockDepth: 8,
  seenEntriesMax: 1000,
  rejectPeersMax: 16,
  ...overrides
})

/** A sealed message with enough work at `nowMs`. */
export const sealed = (
  options: { readonly label: string; readonly payload?: Uint8Array; readonly ttl: number; readonly blockHash: Uint8Array; readonly nowMs: number; readonly algorithm?: Pow.Algorithm }
): Effect.Effect<Message> =>
  Pow.seal(options.algorithm ?? algorithm, {
    id: bytesOf(options.label, MessageModule.idBytes),
    payload: options.payload ?? bytesOf(`${options.label}/payload`, 100),
    ttl: options.ttl,
    blockHash: options.blockHash.subarray(0, 4)
  }, options.nowMs).pipe(Effect.orDie)

/** Encodes a message known to be well-formed. */
export const encoded = (message: Message): Uint8Array => {
  const result = MessageModule.encode(message)
  if (result._tag === "Left") throw new Error(result.left.detail)
  return result.right
}

export const memoryChain = (blocks = 4) => Chain.makeMemory({ blocks, depth: 64 })
