import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Message } from "../src/Message.js"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import type { Result } from "../src/Validate.js"
import { Validator } from "../src/Validate.js"
import { algorithm, bytesOf, encoded, memoryChain, sealed, validatorConfig } from "./fixtures.js"

const nowMs = 1_700_000_000_000
const nowSeconds = nowMs / 1000

const setup = (overrides: Parameters<typeof validatorConfig>[0] = {}) => {
  const chain = memoryChain(4)
  const validator = new Validator(validatorConfig(overrides))
  const refresh = () => validator.setRecentBlockHashes(Effect.runSync(chain.view.recentBlockHashes))
  refresh()
  return { chain, validator, refresh, head: () => Effect.runSync(chain.view.recentBlockHashes)[0]! }
}

/** A proof with exactly `bits` of work over `digest` (found by counting up). */
const proofWithBits = (digest: Uint8Array, bits: number): Uint8Array => {
  for (let counter = 0; ; counter++) {
    const proof = new Uint8Array(8)
    new DataView(proof.buffer).setUint32(4, counter)
    if (algorithm.work(digest, proof) === bits) return proof
  }
}

const reasonOf = (result: Result) => (result.ok ? "ok" : result.reason)

describe("Validate: every hostile input is rejected with its reason, counted per reason and per peer", () => {
  it.effect("a valid message passes once; its duplicate is rejected", () =>
    Effect.gen(function*() {
      const { head, validator } = setup()
      const message = yield* sealed({ label: "ok", ttl: nowSeconds + 600, blockHash: head(), nowMs })
      const first = validator.checkBytes(encoded(message), nowMs, { peer: "p1" })
      assert.strictEqual(reasonOf(first), "ok")
      assert.strictEqual(reasonOf(validator.checkBytes(encoded(message), nowMs, { peer: "p1" })), "Duplicate")
      // Another message under the same id (a different payload) is a duplicate too.
      const sameId = yield* sealed({ label: "ok", payload: bytesOf("other", 10), ttl: nowSeconds + 600, blockHash: head(), nowMs })
      assert.strictEqual(reasonOf(validator.checkBytes(encoded(sameId), nowMs, { peer: "p2" })), "Duplicate")
      const stats = validator.stats()
      assert.strictEqual(stats.accepted, 1)
      assert.strictEqual(stats.rejected.Duplicate, 2)
      assert.deepStrictEqual(stats.byPeer.map((p) => [p.peer, p.reasons.Duplicate]), [["p1", 1], ["p2", 1]])
      assert.strictEqual(Validator.verdict(first), "accept")
    }))

  it.effect("oversized payload, truncated fields, trailing bytes: rejected (and the sender penalised)", () =>
    Effect.gen(function*() {
      const { head, validator } = setup()
      const bytes = encoded(yield* sealed({ label: "size", ttl: nowSeconds + 600, blockHash: head(), nowMs }))
      const oversized = bytes.slice()
      new DataView(oversized.buffer).setUint16(0, MessageModule.payloadBytesMax + 1)
      const results = [
        validator.checkBytes(oversized, nowMs, { peer: "bad" }),
        validator.checkBytes(bytes.subarray(0, 70), nowMs, { peer: "bad" }),
        validator.checkBytes(Uint8Array.from([...bytes, 1]), nowMs, { peer: "bad" })
      ]
      assert.deepStrictEqual(results.map(reasonOf), ["PayloadTooLarge", "Truncated", "TrailingBytes"])
      assert.deepStrictEqual(results.map(Validator.verdict), ["reject", "reject", "reject"])
      assert.strictEqual(validator.stats().byPeer[0]!.total, 3)
    }))

  it.effect("TTL in the past, at now, or beyond now + ttlMax", () =>
    Effect.gen(function*() {
      const { head, validator } = setup()
      const past = yield* sealed({ label: "past", ttl: nowSeconds - 1, blockHash: head(), nowMs: nowMs - 10_000 })
      const atNow = yield* sealed({ label: "now", ttl: nowSeconds, blockHash: head(), nowMs: nowMs - 10_000 })
      const far = yield* sealed({ label: "far", ttl: nowSeconds + 3601, blockHash: head(), nowMs })
      const edge = yield* sealed({ label: "edge", ttl: nowSeconds + 3600, blockHash: head(), nowMs })
      assert.deepStrictEqual(
        [past, atNow, far, edge].map((m) => reasonOf(validator.checkBytes(encoded(m), nowMs))),
        ["TtlExpired", "TtlExpired", "TtlTooFar", "ok"]
      )
    }))

  it.effect("unknown and stale block hashes", () =>
    Effect.gen(function*() {
      const { chain, head, refresh, validator } = setup({ blockDepth: 3 })
      const unknown = yield* sealed({ label: "unknown", ttl: nowSeconds + 60, blockHash: bytesOf("no block", 4), nowMs })
      assert.strictEqual(reasonOf(validator.checkBytes(encoded(unknown), nowMs)), "UnknownBlock")
      const old = head()
      const stale = yield* sealed({ label: "stale", ttl: nowSeconds + 60, blockHash: old, nowMs })
      chain.addBlock()
      chain.addBlock()
      refresh()
      // Two blocks later the hash is still within a depth of 3...
      assert.strictEqual(reasonOf(validator.check(stale, nowMs, { mark: false })), "ok")
      chain.addBlock()
      refresh()
      // ...and three later it is stale.
      const result = validator.checkBytes(encoded(stale), nowMs)
      assert.strictEqual(reasonOf(result), "UnknownBlock")
      assert.strictEqual(Validator.verdict(result), "ignore")
    }))

  it.effect("insufficient work and an unknown algorithm byte", () =>
    Effect.gen(function*() {
      const { head, validator } = setup()
      const message = yield* sealed({ label: "work", payload: bytesOf("big", 4000), ttl: nowSeconds + 3000, blockHash: head(), nowMs })
      // A proof with exactly one bit less than needed, then exactly the bits needed.
      const required = Pow.requiredFor(algorithm, message, nowMs)
      const digest = MessageModule.workDigest(message)
      const lazy: Message = { ...message, proof: proofWithBits(digest, required - 1) }
      assert.strictEqual(reasonOf(validator.checkBytes(encoded(lazy), nowMs, { peer: "lazy" })), "InsufficientWork")
      assert.strictEqual(reasonOf(validator.checkBytes(encoded({ ...message, proof: proofWithBits(digest, required) }), nowMs)), "ok")
      // Work done for a short TTL does not cover a long one: the same proof, TTL pushed out.
      const short = yield* sealed({ label: "short", ttl: nowSeconds + 1, blockHash: head(), nowMs, payload: bytesOf("s", 8000) })
      const stretched: Message = { ...short, ttl: nowSeconds + 3600 }
      const stretchedDigest = MessageModule.workDigest(stretched)
      const stretchedProof = proofWithBits(stretchedDigest, Pow.requiredFor(algorithm, stretched, nowMs) - 1)
      assert.strictEqual(reasonOf(validator.checkBytes(encoded({ ...stretched, proof: stretchedProof }), nowMs)), "InsufficientWork")
      const unknownAlgorithm = validator.checkBytes(encoded({ ...message, algorithm: 42 }), nowMs)
      assert.strictEqual(reasonOf(unknownAlgorithm), "UnknownAlgorithm")
      assert.strictEqual(validator.stats().rejected.UnknownAlgorithm, 1)
      assert.strictEqual(validator.stats().accepted, 1)
      assert.strictEqual(validator.stats().rejected.InsufficientWork, 2)
    }))

  it.effect("the seen set and the per-peer table stay within their bounds", () =>
    Effect.gen(function*() {
      const { head, validator } = setup({ seenEntriesMax: 8, rejectPeersMax: 4 })
      for (let index = 0; index < 20; index++) {
        const message = yield* sealed({ label: `seen-${index}`, ttl: nowSeconds + 60, blockHash: head(), nowMs })
        assert.strictEqual(reasonOf(validator.checkBytes(encoded(message), nowMs)), "ok")
      }
      for (let peer = 0; peer < 10; peer++) validator.checkBytes(new Uint8Array(3), nowMs, { peer: `peer-${peer}` })
      const stats = validator.stats()
      assert.strictEqual(stats.seen, 8)
      assert.strictEqual(stats.seenForgotten, 12)
      assert.strictEqual(stats.byPeer.length, 4)
      assert.strictEqual(stats.peersForgotten, 6)
      assert.strictEqual(stats.rejected.Truncated, 10)
    }))

  it.effect("an id is remembered only until its TTL, and only once the message passed", () =>
    Effect.gen(function*() {
      const { head, validator } = setup()
      const message = yield* sealed({ label: "remember", ttl: nowSeconds + 10, blockHash: head(), nowMs })
      // A forged copy (bad proof) under the victim's id must not block the real one.
      validator.checkBytes(encoded({ ...message, algorithm: 9 }), nowMs)
      assert.isFalse(validator.hasSeen(message.id, nowMs))
      assert.strictEqual(reasonOf(validator.checkBytes(encoded(message), nowMs)), "ok")
      assert.isTrue(validator.hasSeen(message.id, nowMs))
      assert.isFalse(validator.hasSeen(message.id, nowMs + 10_000))
    }))
})
