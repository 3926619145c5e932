import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as FastCheck from "effect/FastCheck"
import type { Message } from "../src/Message.js"
import * as MessageModule from "../src/Message.js"
import { bytesOf } from "./fixtures.js"

const arbitraryMessage: FastCheck.Arbitrary<Message> = FastCheck.record({
  id: FastCheck.uint8Array({ minLength: 64, maxLength: 64 }),
  payload: FastCheck.uint8Array({ maxLength: MessageModule.payloadBytesMax }),
  ttl: FastCheck.integer({ min: 0, max: MessageModule.ttlMax }),
  blockHash: FastCheck.uint8Array({ minLength: 4, maxLength: 4 }),
  algorithm: FastCheck.integer({ min: 0, max: 255 }),
  proof: FastCheck.uint8Array({ maxLength: MessageModule.proofBytesMax })
})

const sample: Message = {
  id: bytesOf("id", 64),
  payload: bytesOf("payload", 300),
  ttl: 1_700_000_000,
  blockHash: Uint8Array.of(1, 2, 3, 4),
  algorithm: 1,
  proof: bytesOf("proof", 8)
}

const encode = (message: Message) => Either.getOrThrow(MessageModule.encode(message))

const reasonOf = (bytes: Uint8Array) => {
  const decoded = MessageModule.decode(bytes)
  return decoded._tag === "Left" ? decoded.left.reason : "ok"
}

describe("Message format", () => {
  it("round-trips every message byte for byte (property)", () => {
    FastCheck.assert(FastCheck.property(arbitraryMessage, (message) => {
      const bytes = encode(message)
      assert.strictEqual(bytes.length, MessageModule.encodedLength(message.payload.length, message.proof.length))
      const decoded = Either.getOrThrow(MessageModule.decode(bytes))
      assert.deepStrictEqual([...decoded.id], [...message.id])
      assert.deepStrictEqual([...decoded.payload], [...message.payload])
      assert.strictEqual(decoded.ttl, message.ttl)
      assert.deepStrictEqual([...decoded.blockHash], [...message.blockHash])
      assert.strictEqual(decoded.algorithm, message.algorithm)
      assert.deepStrictEqual([...decoded.proof], [...message.proof])
      assert.deepStrictEqual([...encode(decoded)], [...bytes])
    }), { numRuns: 200 })
  })

  it("lays the fields out as the README says", () => {
    const bytes = encode(sample)
    assert.deepStrictEqual([...bytes.subarray(0, 2)], [300 >> 8, 300 & 0xff])
    assert.deepStrictEqual([...bytes.subarray(2, 66)], [...sample.id])
    assert.deepStrictEqual([...bytes.subarray(66, 366)], [...sample.payload])
    const view = new DataView(bytes.buffer)
    assert.strictEqual(view.getUint32(366), sample.ttl)
    assert.deepStrictEqual([...bytes.subarray(370, 374)], [1, 2, 3, 4])
    assert.strictEqual(bytes[374], 1)
    assert.strictEqual(bytes[375], 8)
    assert.strictEqual(bytes.length, 376 + 8)
  })

  it("a cut anywhere is a typed Truncated error naming the field", () => {
    const bytes = encode(sample)
    for (let length = 0; length < bytes.length; length++) {
      const decoded = MessageModule.decode(bytes.subarray(0, length))
      assert.isTrue(decoded._tag === "Left", `length ${length}`)
      if (decoded._tag === "Left") assert.strictEqual(decoded.left.reason, "Truncated")
    }
    const cut = MessageModule.decode(bytes.subarray(0, 100))
    assert.match(cut._tag === "Left" ? cut.left.detail ?? "" : "", /payload/)
  })

  it("refuses an oversized payload length before reading it, trailing bytes, and an oversized proof", () => {
    const bytes = encode(sample)
    const oversized = bytes.slice()
    new DataView(oversized.buffer).setUint16(0, MessageModule.payloadBytesMax + 1)
    assert.strictEqual(reasonOf(oversized), "PayloadTooLarge")
    assert.strictEqual(reasonOf(Uint8Array.from([...bytes, 0])), "TrailingBytes")
    const bigProof = bytes.slice()
    bigProof[375] = MessageModule.proofBytesMax + 1
    assert.strictEqual(reasonOf(bigProof), "ProofTooLarge")
    const encodedBig = MessageModule.encode({ ...sample, payload: new Uint8Array(MessageModule.payloadBytesMax + 1) })
    assert.strictEqual(encodedBig._tag === "Left" ? encodedBig.left.reason : "ok", "PayloadTooLarge")
    const badId = MessageModule.encode({ ...sample, id: new Uint8Array(63) })
    assert.strictEqual(badId._tag === "Left" ? badId.left.reason : "ok", "BadField")
  })

  it("never throws on random or mutated bytes (fuzz)", () => {
    const bytes = encode(sample)
    FastCheck.assert(FastCheck.property(
      FastCheck.oneof(
        FastCheck.uint8Array({ maxLength: 9000 }),
        FastCheck.array(FastCheck.tuple(FastCheck.nat(bytes.length - 1), FastCheck.integer({ min: 0, max: 255 })), { maxLength: 8 })
          .map((edits) => {
            const copy = bytes.slice()
            for (const [at, value] of edits) copy[at] = value
            return copy
          })
      ),
      (input) => {
        const decoded = MessageModule.decode(input)
        if (decoded._tag === "Right") assert.deepStrictEqual([...encode(decoded.right)], [...input])
      }
    ), { numRuns: 500 })
  })

  it("the hot-path work digest equals the specified SHA-256(ID ‖ PAYLOAD ‖ TTL ‖ BLOCKHASH)", () => {
    const bytes = encode(sample)
    assert.deepStrictEqual([...MessageModule.workDigestOfEncoded(bytes, sample.payload.length)], [...MessageModule.workDigest(sample)])
    assert.notDeepEqual([...MessageModule.workDigest({ ...sample, ttl: sample.ttl + 1 })], [...MessageModule.workDigest(sample)])
  })
})
