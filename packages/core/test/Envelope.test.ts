import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Codec from "../src/Codec.js"
import * as Envelope from "../src/Envelope.js"
import * as Limits from "../src/Limits.js"

const limits = Limits.defaults
const decode = Envelope.decoder(limits)
const kinds = Object.values(Envelope.Kind)
const withCorr = new Set<number>([1, 2, 3, 4, 5, 6, 11])
const withTo = new Set<number>([10, 11])

const reasonOf = (bytes: Uint8Array): string | undefined => {
  const result = decode(bytes)
  return Either.isLeft(result) ? result.left.reason : undefined
}

const wire = (...items: ReadonlyArray<unknown>) => Codec.encode(items)

const body = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 64 }),
  fc.array(fc.integer(), { maxLength: 8 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((key) => key !== "__proto__"), fc.integer(), { maxKeys: 4 })
)

const envelope: fc.Arbitrary<Envelope.Envelope> = fc
  .record({
    kind: fc.constantFrom(...kinds),
    stream: fc.integer({ min: 0, max: 0xffff_ffff }),
    seq: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
    tag: fc.string({ maxLength: limits.tagCharsMax }),
    corr: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    to: fc.string({ minLength: 1, maxLength: 40 }).filter((path) => !path.startsWith("/")),
    body
  })
  .map((fields) => ({
    ...fields,
    corr: withCorr.has(fields.kind) ? fields.corr : undefined,
    to: withTo.has(fields.kind) ? fields.to : undefined
  }))

describe("Envelope", () => {
  it.prop("round-trips every valid envelope", [envelope], ([value]) => {
    const decoded = decode(Envelope.encode(value))
    assert.isTrue(Either.isRight(decoded))
    assert.deepStrictEqual(Either.getOrThrow(decoded), value)
  })

  it("is a compact array on the wire", () => {
    const bytes = Envelope.encode({ kind: Envelope.Kind.message, stream: 0, seq: 0, tag: "t", corr: undefined, to: undefined, body: 1 })
    // fixarray(8), 1, 0, 0, 0, fixstr "t", nil, nil, 1
    assert.deepStrictEqual(Array.from(bytes), [0x98, 1, 0, 0, 0, 0xa1, 0x74, 0xc0, 0xc0, 1])
  })

  it.prop("never throws on random bytes", [fc.uint8Array({ maxLength: 256 })], ([bytes]) => {
    const result = decode(bytes)
    assert.isTrue(Either.isLeft(result) || Either.isRight(result))
  })

  it.prop(
    "never throws on mutated valid envelopes",
    [envelope, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat()],
    ([value, mutations, cut]) => {
      const original = Envelope.encode(value)
      const bytes = original.slice()
      for (const [at, byte] of mutations) bytes[at % bytes.length] = byte
      const mutated = decode(bytes)
      assert.isTrue(Either.isLeft(mutated) || Either.isRight(mutated))
      // a strict prefix of a valid envelope is never one
      assert.isTrue(Either.isLeft(decode(original.subarray(0, cut % original.length))))
    }
  )

  it("rejects each kind of bad envelope with a CodecError", () => {
    assert.strictEqual(reasonOf(wire(1, 0, 0, 0, "t", null, null, 1)), undefined)
    assert.strictEqual(reasonOf(wire(2, 0, 0, 0, "t", null, null, 1)), "Schema") // wrong version
    assert.strictEqual(reasonOf(wire(1, 12, 0, 0, "t", null, null, 1)), "Schema") // unknown kind
    assert.strictEqual(reasonOf(wire(1, 0, -1, 0, "t", null, null, 1)), "Schema") // negative stream
    assert.strictEqual(reasonOf(wire(1, 0, 0x1_0000_0000, 0, "t", null, null, 1)), "Schema") // stream beyond u32
    assert.strictEqual(reasonOf(wire(1, 0, 0, 1.5, "t", null, null, 1)), "Schema") // fractional seq
    assert.strictEqual(reasonOf(wire(1, 0, 0, 2 ** 60, "t", null, null, 1)), "Schema") // seq beyond safe integers
    assert.strictEqual(reasonOf(wire(1, 0, 0, 18446744073709551615n, "t", null, null, 1)), "Schema") // u64 seq
    assert.strictEqual(reasonOf(wire(1, 0, 0, 0, "x".repeat(limits.tagCharsMax + 1), null, null, 1)), "Schema")
    assert.strictEqual(reasonOf(wire(1, 10, 0, 0, "", null, "p".repeat(limits.actorPathCharsMax + 1), 1)), "Schema")
    assert.strictEqual(reasonOf(wire(1, 10, 0, 0, "", null, "/abs", 1)), "Schema") // leading slash
    assert.strictEqual(reasonOf(wire(1, 0, 0, 0, "t", null, null)), "Schema") // 7 items
    assert.strictEqual(reasonOf(wire(1, 0, 0, 0, "t", null, null, 1, 2)), "Schema") // 9 items
    assert.strictEqual(reasonOf(wire(1, 1, 0, 0, "t", null, null, 1)), "Schema") // call without corr
    assert.strictEqual(reasonOf(wire(1, 0, 0, 0, "t", 5, null, 1)), "Schema") // message with corr
    assert.strictEqual(reasonOf(wire(1, 10, 0, 0, "", null, null, 1)), "Schema") // tell without path
    assert.strictEqual(reasonOf(Codec.encode({ v: 1, kind: 0 })), "Schema") // a map, not an array
    assert.strictEqual(reasonOf(new Uint8Array([0x98, 1, 0])), "Malformed") // truncated
    assert.strictEqual(reasonOf(new Uint8Array([0xc1])), "Malformed") // never-used token
    assert.strictEqual(reasonOf(new Uint8Array(limits.envelopeBytesMax + 1)), "TooLarge")
  })

  it("keeps the decoder's bounds from the limits it is given", () => {
    const strict = Envelope.decoder({ ...limits, tagCharsMax: 3, envelopeBytesMax: 32 })
    assert.isTrue(Either.isRight(strict(wire(1, 0, 0, 0, "abc", null, null, 1))))
    assert.isTrue(Either.isLeft(strict(wire(1, 0, 0, 0, "abcd", null, null, 1))))
    assert.isTrue(Either.isLeft(strict(wire(1, 0, 0, 0, "abc", null, null, "x".repeat(40)))))
  })
})
