import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import { algorithm, bytesOf } from "./fixtures.js"

describe("Pow", () => {
  it("required work grows with the TTL's distance and with the size, from the minimum", () => {
    const params = Pow.defaultParams
    assert.strictEqual(Pow.requiredBits(params, 0, 0), params.workBitsMin)
    assert.isBelow(Pow.requiredBits(params, 600, 1024), Pow.requiredBits(params, 86_400, 1024))
    assert.isBelow(Pow.requiredBits(params, 600, 100), Pow.requiredBits(params, 600, 8000))
    // Both factors 1: ten minutes of 1 KiB need 13 bits, a day 20 (the Pow.ts doc comment).
    assert.strictEqual(Pow.requiredBits(params, 600, 1024), 13)
    assert.strictEqual(Pow.requiredBits(params, 86_400, 1024), 20)
    assert.strictEqual(Pow.requiredBits({ workBitsMin: 300, ttlFactor: 0, sizeFactor: 0 }, 0, 0), Pow.bitsMax)
  })

  it.effect("solve finds a proof with the bits asked, verify checks it with one hash, progress is reported", () =>
    Effect.gen(function*() {
      const digest = bytesOf("digest", 32)
      const progress: Array<Pow.Progress> = []
      const proof = yield* Pow.solve(algorithm, digest, 12, { batchAttempts: 256, onProgress: (p) => void progress.push(p) })
      assert.isAtLeast(algorithm.work(digest, proof), 12)
      assert.isAbove(progress.length, 0)
      assert.strictEqual(progress.at(-1)!.bits, 12)
      assert.strictEqual(progress.at(-1)!.expectedAttempts, 4096)
      // A proof for another digest, a short proof and a long one show (almost surely) less work.
      assert.isBelow(algorithm.work(bytesOf("other", 32), proof), 12 + 8)
      assert.strictEqual(algorithm.work(digest, proof.subarray(0, 7)), 0)
      assert.strictEqual(algorithm.work(digest, new Uint8Array(9)), 0)
    }))

  it.effect("solve is interruptible between batches", () =>
    Effect.gen(function*() {
      let attempts = 0
      const fiber = yield* Effect.fork(Pow.solve(algorithm, bytesOf("hard", 32), 60, { batchAttempts: 64, onProgress: (p) => void (attempts = p.attempts) }))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      const stopped = attempts
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      assert.isAbove(stopped, 0)
      assert.strictEqual(attempts, stopped)
    }))

  it.effect("seal stamps what the validator will ask at that time", () =>
    Effect.gen(function*() {
      const nowMs = 1_000_000_000
      const unsealed = { id: bytesOf("id", 64), payload: bytesOf("p", 500), ttl: nowMs / 1000 + 3600, blockHash: Uint8Array.of(1, 2, 3, 4) }
      const message = yield* Pow.seal(algorithm, unsealed, nowMs)
      const required = Pow.requiredFor(algorithm, message, nowMs)
      assert.isAtLeast(algorithm.work(MessageModule.workDigest(message), message.proof), required)
      assert.strictEqual(message.algorithm, Pow.sha256Id)
      const tooBig = yield* Effect.either(Pow.seal(algorithm, { ...unsealed, payload: new Uint8Array(9000) }, nowMs))
      assert.strictEqual(tooBig._tag === "Left" ? tooBig.left.reason : "ok", "PayloadTooLarge")
    }))

  it("a registry refuses two algorithms with one byte, and lookup of an unknown byte is typed", () => {
    assert.throws(() => Pow.registry([algorithm, Pow.sha256()]))
    const failed = Effect.runSync(Effect.either(Pow.lookup(Pow.registry([algorithm]), 9)))
    assert.strictEqual(failed._tag === "Left" ? failed.left.reason : "ok", "UnknownAlgorithm")
  })
})
