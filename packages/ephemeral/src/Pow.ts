/**
 * Proof of work: a registry of pluggable algorithms keyed by the message's algorithm byte, each with its
 * parameters, and the one shipped algorithm, `sha256` (byte 1).
 *
 * Work is measured in bits (log2 of the expected number of SHA-256 attempts), so algorithms compare and
 * the store can rank messages by work per byte. The work a message needs grows with its lifetime and its
 * size — what it costs the network is bytes × seconds of storage:
 *
 *   required = ceil(workBitsMin + ttlFactor · log2(1 + ttlSeconds / 60) + sizeFactor · log2(1 + bytes / 1024))
 *
 * where `ttlSeconds` is the TTL's distance from the validating node's clock (so a message needs less as
 * it ages) and `bytes` its encoded length. With both factors 1, work doubles as the TTL or size doubles.
 */
import { Effect, Random } from "effect"
import { hash } from "node:crypto"
import { EphemeralError } from "./EphemeralError.js"
import { defaults } from "./EphemeralLimits.js"
import type { Message, Unsealed } from "./Message.js"
import * as MessageModule from "./Message.js"

/** The parameters of one algorithm, which every node of a network should share. */
export interface Params {
  /** Bits every message needs, however short-lived and small. */
  readonly workBitsMin: number
  /** Extra bits per doubling of (1 + TTL distance in minutes). */
  readonly ttlFactor: number
  /** Extra bits per doubling of (1 + encoded size in KiB). */
  readonly sizeFactor: number
}

/** What a solver reports while it runs. */
export interface Progress {
  readonly attempts: number
  readonly bits: number
  /** Attempts a solve needs on average (2^bits). */
  readonly expectedAttempts: number
}

/** A proof-of-work algorithm. */
export interface Algorithm {
  /** Its algorithm byte on the wire. */
  readonly id: number
  readonly name: string
  readonly params: Params
  /** Length of its proofs. */
  readonly proofBytes: number
  /** Bits of work `proof` shows over `digest` (0 for a malformed proof); cheap: one hash. */
  readonly work: (digest: Uint8Array, proof: Uint8Array) => number
  /**
   * Tries `count` proofs from `start` (a counter the algorithm maps to candidates); returns the first
   * with at least `bits` of work, or undefined.
   */
  readonly attempt: (digest: Uint8Array, bits: number, start: number, count: number) => Uint8Array | undefined
}

/** The algorithms a node accepts, by algorithm byte. */
export type Registry = ReadonlyMap<number, Algorithm>

/** The registry of `algorithms`; a duplicate algorithm byte is a defect of the caller. */
export const registry = (algorithms: ReadonlyArray<Algorithm>): Registry => {
  const map = new Map<number, Algorithm>()
  for (const algorithm of algorithms) {
    if (map.has(algorithm.id)) throw new Error(`Pow.registry: algorithm byte ${algorithm.id} twice`)
    map.set(algorithm.id, algorithm)
  }
  return map
}

/** The default parameters: a 10-minute 1-KiB message needs 13 bits, a 1-day one 20. */
export const defaultParams: Params = { workBitsMin: 8, ttlFactor: 1, sizeFactor: 1 }

/** Seconds per unit of the TTL term. */
export const ttlUnitSeconds = 60
/** Bytes per unit of the size term. */
export const sizeUnitBytes = 1024
/** The most work any message can be asked for (a SHA-256 digest has 256 bits). */
export const bitsMax = 256

/** Bits a message needs whose TTL lies `ttlSeconds` ahead and whose encoding has `encodedBytes`. */
export const requiredBits = (params: Params, ttlSeconds: number, encodedBytes: number): number => {
  const bits = params.workBitsMin +
    params.ttlFactor * Math.log2(1 + Math.max(0, ttlSeconds) / ttlUnitSeconds) +
    params.sizeFactor * Math.log2(1 + encodedBytes / sizeUnitBytes)
  return Math.min(bitsMax, Math.max(0, Math.ceil(bits - 1e-9)))
}

/** Leading zero bits of `bytes`. */
export const leadingZeroBits = (bytes: Uint8Array): number => {
  let bits = 0
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index]!
    if (byte === 0) {
      bits += 8
      continue
    }
    return bits + Math.clz32(byte) - 24
  }
  return bits
}

/** The byte of the shipped algorithm. */
export const sha256Id = 1
const nonceBytes = 8

/**
 * The shipped algorithm: an 8-byte nonce such that SHA-256(digest ‖ nonce) has at least `bits` leading
 * zero bits. Verification is one hash of 40 bytes.
 */
export const sha256 = (params: Params = defaultParams): Algorithm => {
  // One scratch buffer per algorithm value: JavaScript runs one check at a time, and the hot path then
  // allocates nothing but the digest.
  const scratch = new Uint8Array(32 + nonceBytes)
  return {
    id: sha256Id,
    name: "sha256",
    params,
    proofBytes: nonceBytes,
    work: (digest, proof) => {
      if (proof.length !== nonceBytes || digest.length !== 32) return 0
      scratch.set(digest, 0)
      scratch.set(proof, 32)
      return leadingZeroBits(hash("sha256", scratch, "buffer"))
    },
    attempt: (digest, bits, start, count) => {
      const input = new Uint8Array(32 + nonceBytes)
      input.set(digest, 0)
      const view = new DataView(input.buffer)
      for (let index = 0; index < count; index++) {
        const counter = start + index
        view.setUint32(32, Math.floor(counter / 0x1_0000_0000))
        view.setUint32(36, counter >>> 0)
        if (leadingZeroBits(hash("sha256", input, "buffer")) >= bits) return input.slice(32)
      }
      return undefined
    }
  }
}

/** Options of `solve` and `seal`. */
export interface SolveOptions {
  /** Called after every batch of attempts (and once at the end). */
  readonly onProgress?: ((progress: Progress) => void) | undefined
  /** Attempts per batch (default `EphemeralLimits.solveBatchAttempts`): between two batches the solver yields, so it can be interrupted. */
  readonly batchAttempts?: number | undefined
}

/**
 * Finds a proof with at least `bits` of work over `digest`. Runs in batches and yields between them, so
 * interrupting the fiber stops it within one batch. Starts at a random counter (from `Random`, so a
 * seeded run replays), so two solvers of one digest do not repeat each other's attempts.
 */
export const solve = (algorithm: Algorithm, digest: Uint8Array, bits: number, options: SolveOptions = {}): Effect.Effect<Uint8Array> =>
  Effect.gen(function*() {
    const batch = Math.max(1, options.batchAttempts ?? defaults.solveBatchAttempts)
    const expectedAttempts = 2 ** bits
    let counter = (yield* Random.nextIntBetween(0, 2 ** 31 - 1)) * 1024
    let attempts = 0
    for (;;) {
      const found = algorithm.attempt(digest, bits, counter, batch)
      counter += batch
      attempts += batch
      if (found !== undefined) {
        options.onProgress?.({ attempts, bits, expectedAttempts })
        return found
      }
      options.onProgress?.({ attempts, bits, expectedAttempts })
      yield* Effect.yieldNow()
    }
  })

/** Bits `message` needs at `nowMs` under `algorithm`'s parameters. */
export const requiredFor = (algorithm: Algorithm, message: { readonly ttl: number; readonly payload: Uint8Array }, nowMs: number): number =>
  requiredBits(
    algorithm.params,
    message.ttl - nowMs / 1000,
    MessageModule.encodedLength(message.payload.length, algorithm.proofBytes)
  )

/**
 * Stamps `unsealed` with a proof of the work it needs at `nowMs` (its TTL distance and size).
 * Fails with "BadField"/"PayloadTooLarge" if the message cannot be encoded.
 */
export const seal = (algorithm: Algorithm, unsealed: Unsealed, nowMs: number, options: SolveOptions = {}): Effect.Effect<Message, EphemeralError> =>
  Effect.gen(function*() {
    const placeholder: Message = { ...unsealed, algorithm: algorithm.id, proof: new Uint8Array(algorithm.proofBytes) }
    const encoded = MessageModule.encode(placeholder)
    if (encoded._tag === "Left") return yield* encoded.left
    const bits = requiredFor(algorithm, unsealed, nowMs)
    const proof = yield* solve(algorithm, MessageModule.workDigest(unsealed), bits, options)
    return { ...placeholder, proof }
  })

/** Fails with "UnknownAlgorithm" unless the registry has `id`. */
export const lookup = (algorithms: Registry, id: number): Effect.Effect<Algorithm, EphemeralError> => {
  const found = algorithms.get(id)
  return found === undefined
    ? Effect.fail(new EphemeralError({ reason: "UnknownAlgorithm", detail: `no proof-of-work algorithm ${id}; this node knows ${[...algorithms.keys()].join(", ")}` }))
    : Effect.succeed(found)
}
