import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Codec from "../src/Codec.js"
import * as Envelope from "../src/Envelope.js"
import * as Limits from "../src/Limits.js"
import type { CodecError } from "../src/WeftError.js"

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

/** Every hand-written case: what it is, its bytes, and the CodecError reason it gets (undefined: accepted). */
const handWritten: ReadonlyArray<readonly [string, Uint8Array, string | undefined]> = [
  ["valid", wire(1, 0, 0, 0, "t", null, null, 1), undefined],
  ["wrong version", wire(2, 0, 0, 0, "t", null, null, 1), "Schema"],
  ["unknown kind", wire(1, 12, 0, 0, "t", null, null, 1), "Schema"],
  ["negative stream", wire(1, 0, -1, 0, "t", null, null, 1), "Schema"],
  ["stream beyond u32", wire(1, 0, 0x1_0000_0000, 0, "t", null, null, 1), "Schema"],
  ["fractional seq", wire(1, 0, 0, 1.5, "t", null, null, 1), "Schema"],
  ["seq beyond safe integers", wire(1, 0, 0, 2 ** 60, "t", null, null, 1), "Schema"],
  ["u64 seq", wire(1, 0, 0, 18446744073709551615n, "t", null, null, 1), "Schema"],
  ["tag too long", wire(1, 0, 0, 0, "x".repeat(limits.tagCharsMax + 1), null, null, 1), "Schema"],
  ["path too long", wire(1, 10, 0, 0, "", null, "p".repeat(limits.actorPathCharsMax + 1), 1), "Schema"],
  ["leading slash", wire(1, 10, 0, 0, "", null, "/abs", 1), "Schema"],
  ["7 items", wire(1, 0, 0, 0, "t", null, null), "Schema"],
  ["9 items", wire(1, 0, 0, 0, "t", null, null, 1, 2), "Schema"],
  ["call without corr", wire(1, 1, 0, 0, "t", null, null, 1), "Schema"],
  ["message with corr", wire(1, 0, 0, 0, "t", 5, null, 1), "Schema"],
  ["tell without path", wire(1, 10, 0, 0, "", null, null, 1), "Schema"],
  ["a map, not an array", Codec.encode({ v: 1, kind: 0 }), "Schema"],
  ["truncated", new Uint8Array([0x98, 1, 0]), "Malformed"],
  ["never-used token", new Uint8Array([0xc1]), "Malformed"],
  ["too large", new Uint8Array(limits.envelopeBytesMax + 1), "TooLarge"]
]

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
      const bytes = Uint8Array.from(original) // not Buffer#slice: that is a view, and would mutate `original` too
      for (const [at, byte] of mutations) bytes[at % bytes.length] = byte
      const mutated = decode(bytes)
      assert.isTrue(Either.isLeft(mutated) || Either.isRight(mutated))
      // a strict prefix of a valid envelope is never one
      assert.isTrue(Either.isLeft(decode(original.subarray(0, cut % original.length))))
    }
  )

  it("rejects each kind of bad envelope with a CodecError", () => {
    for (const [label, bytes, reason] of handWritten) assert.strictEqual(reasonOf(bytes), reason, label)
  })

  it("keeps the decoder's bounds from the limits it is given", () => {
    const strict = Envelope.decoder({ ...limits, tagCharsMax: 3, envelopeBytesMax: 32 })
    assert.isTrue(Either.isRight(strict(wire(1, 0, 0, 0, "abc", null, null, 1))))
    assert.isTrue(Either.isLeft(strict(wire(1, 0, 0, 0, "abcd", null, null, 1))))
    assert.isTrue(Either.isLeft(strict(wire(1, 0, 0, 0, "abc", null, null, "x".repeat(40)))))
  })
})

// ---- the hand-written decoder against the Schema it stands for ---------------------------------

const tight = { ...limits, tagCharsMax: 3, actorPathCharsMax: 4, envelopeBytesMax: 256 }

/** The reference: `Codec` then the documented Schema, exactly as the decoder was defined before. */
const referenceDecoder = (bounds: typeof limits) => Codec.decodeWith(Envelope.schema(bounds), bounds.envelopeBytesMax)
const referenceFromWire = (bounds: typeof limits) => {
  const decodeSchema = Schema.decodeUnknownEither(Envelope.schema(bounds))
  return (value: unknown) => Either.mapLeft(decodeSchema(value), Codec.schemaError)
}

/** Same verdict, same reason, same decoded envelope. */
const assertAgree = (fast: Either.Either<Envelope.Envelope, CodecError>, reference: Either.Either<Envelope.Envelope, CodecError>): void => {
  if (Either.isLeft(reference)) {
    assert.isTrue(Either.isLeft(fast), `the schema rejects (${reference.left.detail}) but the decoder accepts`)
    assert.strictEqual((fast as Either.Left<CodecError, Envelope.Envelope>).left.reason, reference.left.reason)
    return
  }
  assert.isTrue(Either.isRight(fast), `the schema accepts but the decoder rejects: ${Either.isLeft(fast) ? fast.left.detail : ""}`)
  assert.deepStrictEqual(Either.getOrThrow(fast), reference.right)
}

const boundsCases = [["default limits", limits], ["tight limits", tight]] as const

/** Values that sit on or next to every rule of the schema, and anything else msgpack carries. */
const edgeValue = fc.oneof(
  fc.constantFrom<unknown>(
    null, undefined, true, false, 0, -0, 1, -1, 1.5, 2, 3, 4, 11, 12, 0xffff_ffff, 0x1_0000_0000,
    Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1, 2 ** 60, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
    "", "/", "a", "/a", "ab", "abc", "abcd", "abcde", "a/b", "x".repeat(limits.tagCharsMax), "x".repeat(limits.tagCharsMax + 1),
    "p".repeat(limits.actorPathCharsMax), "p".repeat(limits.actorPathCharsMax + 1), 5n, 18446744073709551615n, -(2n ** 63n)
  ),
  fc.integer({ min: -5, max: 20 }),
  fc.double(),
  fc.string({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 4 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom("a", "b", "0", "length"), fc.integer(), { maxKeys: 2 })
)

/** An item at `index` of the wire array: usually one the schema accepts there, often an edge value. */
const itemAt = (index: number): fc.Arbitrary<unknown> => {
  const plausible = [
    fc.constant(Envelope.version),
    fc.constantFrom(...kinds),
    fc.nat(),
    fc.nat(),
    fc.string({ maxLength: 4 }),
    fc.option(fc.nat(), { nil: null }),
    fc.option(fc.string({ minLength: 1, maxLength: 5 }), { nil: null }),
    body
  ][index]
  return plausible === undefined ? edgeValue : fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 1, arbitrary: edgeValue })
}

/** Wire arrays, mostly of 8 items, near the boundary between valid and invalid. */
const wireArray = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(...Array.from({ length: 8 }, (_, index) => itemAt(index))) as fc.Arbitrary<Array<unknown>> },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 10 }).chain((length) => fc.tuple(...Array.from({ length }, (_, index) => itemAt(index)))) as fc.Arbitrary<Array<unknown>> },
  { weight: 1, arbitrary: edgeValue.map((value) => value as unknown as Array<unknown>) }
)

describe("Envelope decoder agrees with Envelope.schema", () => {
  for (const [name, bounds] of boundsCases) {
    const fast = Envelope.fromWire(bounds)
    const reference = referenceFromWire(bounds)
    const fastBytes = Envelope.decoder(bounds)
    const referenceBytes = referenceDecoder(bounds)

    it.prop(`on random decoded arrays (${name})`, [wireArray], ([value]) => {
      assertAgree(fast(value), reference(value))
    }, { fastCheck: { numRuns: 2000 } })

    it.prop(`on the encodings of random arrays (${name})`, [wireArray], ([value]) => {
      const bytes = Codec.encode(value)
      assertAgree(fastBytes(bytes), referenceBytes(bytes))
    }, { fastCheck: { numRuns: 1000 } })

    it.prop(
      `on mutated and cut encodings of valid envelopes (${name})`,
      [envelope, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat()],
      ([value, mutations, cut]) => {
        const bytes = Uint8Array.from(Envelope.encode(value))
        for (const [at, byte] of mutations) bytes[at % bytes.length] = byte
        assertAgree(fastBytes(bytes), referenceBytes(bytes))
        const prefix = bytes.subarray(0, cut % (bytes.length + 1))
        assertAgree(fastBytes(prefix), referenceBytes(prefix))
      },
      { fastCheck: { numRuns: 1000 } }
    )

    it.prop(`on random bytes (${name})`, [fc.uint8Array({ maxLength: 300 })], ([bytes]) => {
      assertAgree(fastBytes(bytes), referenceBytes(bytes))
    })

    it(`on every hand-written case (${name})`, () => {
      for (const [, bytes] of handWritten) assertAgree(fastBytes(bytes), referenceBytes(bytes))
      for (const value of [
        [1, 0, 0, 0, "abc", null, null, 1], [1, 0, 0, 0, "abcd", null, null, 1], [1, 0, 0, 0, "abc", null, null, "x".repeat(400)],
        [1, 10, 0, 0, "", null, "pppp", 1], [1, 10, 0, 0, "", null, "ppppp", 1], [1, 11, 0, 0, "", 0, "p", 1], [1, 11, 0, 0, "", null, "p", 1],
        [1, 0, 0, -0, "", null, null, undefined], [1, 0, 0, Number.NaN, "", null, null, 1], [1, 0, 0, 0, "", undefined, null, 1]
      ]) {
        assertAgree(fast(value), reference(value))
        const bytes = Codec.encode(value)
        assertAgree(fastBytes(bytes), referenceBytes(bytes))
      }
    })
  }

  it("really checks: a decoder that accepts more is caught", () => {
    const lenient = (value: unknown): Either.Either<Envelope.Envelope, CodecError> =>
      Either.isLeft(Envelope.fromWire(limits)(value))
        ? Either.right({ kind: 0, stream: 0, seq: 0, tag: "", corr: undefined, to: undefined, body: value })
        : Envelope.fromWire(limits)(value)
    const value = [1, 10, 0, 0, "", null, "/abs", 1]
    assert.throws(() => assertAgree(lenient(value), referenceFromWire(limits)(value)))
  })
})
