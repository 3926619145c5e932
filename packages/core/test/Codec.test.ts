import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import * as Codec from "../src/Codec.js"

const maxBytes = 64 * 1024

/** msgpackr hands back Buffers; compare them as the plain Uint8Arrays they are. */
const normalize = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return Uint8Array.from(value)
  if (Array.isArray(value)) return value.map(normalize)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, normalize(inner)]))
  }
  return value
}

const key = fc.string({ maxLength: 12 }).filter((text) => text !== "__proto__")

/** JSON-ish values plus byte strings and 64-bit bigints: what the wire carries. */
const wireValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double().filter((number) => !Object.is(number, -0)),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: "grapheme", maxLength: 20 }),
    fc.uint8Array({ maxLength: 64 }),
    fc.bigInt(-(2n ** 63n), 2n ** 64n - 1n),
    fc.array(tie("value"), { maxLength: 6 }),
    fc.dictionary(key, tie("value"), { maxKeys: 6 })
  )
})).value

const decodeOk = (bytes: Uint8Array) => {
  const result = Codec.decode(bytes, maxBytes)
  if (Either.isLeft(result)) assert.fail(`expected a value, got ${result.left.reason}: ${result.left.detail}`)
  return result.right
}

const reasonOf = (bytes: Uint8Array, limit = maxBytes) => {
  const result = Codec.decode(bytes, limit)
  return Either.isLeft(result) ? result.left.reason : "ok"
}

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s/g, ""), "hex"))

const nested = (depth: number, open: number) => new Uint8Array([...new Array<number>(depth).fill(open), 0x90])

describe("Codec", () => {
  describe("round trip", () => {
    it.prop("decode(encode(v)) equals v", [wireValue], ([value]) => {
      assert.deepStrictEqual(normalize(decodeOk(Codec.encode(value))), normalize(value))
    }, { fastCheck: { numRuns: 500 } })

    it("keeps 64-bit integers exact and byte strings as Uint8Array", () => {
      for (const big of [2n ** 64n - 1n, -(2n ** 63n), 0n, 1n, -1n]) assert.strictEqual(decodeOk(Codec.encode(big)), big)
      const bytes = decodeOk(Codec.encode({ b: new Uint8Array([1, 2, 3]) })) as { b: unknown }
      assert.instanceOf(bytes.b, Uint8Array)
      assert.deepStrictEqual(Uint8Array.from(bytes.b as Uint8Array), new Uint8Array([1, 2, 3]))
    })

    it("accepts undefined and dates, the two extensions msgpackr writes for plain values", () => {
      assert.deepStrictEqual(decodeOk(Codec.encode({ a: undefined })), { a: undefined })
      assert.deepStrictEqual(decodeOk(Codec.encode(new Date(1_700_000_000_000))), new Date(1_700_000_000_000))
    })

    it("does not alias the input buffer in decoded byte strings", () => {
      const input = Codec.encode(new Uint8Array([7, 7, 7]))
      const decoded = decodeOk(input) as Uint8Array
      input.fill(0)
      assert.deepStrictEqual(Uint8Array.from(decoded), new Uint8Array([7, 7, 7]))
    })

    it("encodes in the plain msgpack format (no records)", () => {
      assert.deepStrictEqual(Codec.encode([{ a: 1 }, { a: 2 }]).includes(0x72), false)
      assert.deepStrictEqual(Uint8Array.from(Codec.encode([1, "a", null])), hex("93 01 a1 61 c0"))
    })
  })

  describe("untrusted input", () => {
    it.prop("never throws on random bytes", [fc.uint8Array({ maxLength: 256 })], ([bytes]) => {
      const result = Codec.decode(bytes, maxBytes)
      assert.isTrue(Either.isEither(result))
      // Whatever the pre-scan lets through, msgpackr must decode: hostile input never reaches its failure paths.
      assert.strictEqual(Either.isRight(result), Codec.scan(bytes) === undefined)
    }, { fastCheck: { numRuns: 3000 } })

    it.prop("rejects truncated and extended encodings", [wireValue, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 })], ([value, cut, extra]) => {
      const bytes = Codec.encode(value)
      assert.strictEqual(reasonOf(bytes.subarray(0, cut % bytes.length)), "Malformed")
      assert.strictEqual(reasonOf(new Uint8Array([...bytes, ...extra])), "Malformed")
    }, { fastCheck: { numRuns: 500 } })

    it.prop("never throws on bit-flipped encodings", [wireValue, fc.nat(), fc.integer({ min: 0, max: 7 })], ([value, index, bit]) => {
      const bytes = Uint8Array.from(Codec.encode(value))
      bytes[index % bytes.length] = bytes[index % bytes.length]! ^ (1 << bit)
      assert.isTrue(Either.isEither(Codec.decode(bytes, maxBytes)))
    }, { fastCheck: { numRuns: 2000 } })

    it("rejects oversized input before looking at it", () => {
      const bytes = Codec.encode("x".repeat(100))
      assert.strictEqual(reasonOf(bytes, bytes.length), "ok")
      assert.strictEqual(reasonOf(bytes, bytes.length - 1), "TooLarge")
      // Even garbage is TooLarge, not Malformed: the size check comes first.
      assert.strictEqual(reasonOf(new Uint8Array(11).fill(0xc1), 10), "TooLarge")
    })

    it("refuses length fields that claim more than the input holds", () => {
      assert.strictEqual(reasonOf(hex("dd ffffffff 01 02 03")), "Malformed") // array32 of 2^32-1 items
      assert.strictEqual(reasonOf(hex("df ffffffff a1 61 01")), "Malformed") // map32
      assert.strictEqual(reasonOf(hex("dc 0003 01 02")), "Malformed") // array16 one short
      assert.strictEqual(reasonOf(hex("db ffffffff 61")), "Malformed") // str32
      assert.strictEqual(reasonOf(hex("c6 ffffffff 00")), "Malformed") // bin32
      assert.strictEqual(reasonOf(hex("c9 ffffffff 00")), "Malformed") // ext32
      assert.strictEqual(reasonOf(hex("dd ff")), "Malformed") // header itself truncated
      assert.strictEqual(reasonOf(hex("cf 00 00")), "Malformed") // uint64 truncated
    })

    it("bounds nesting without recursing", () => {
      assert.strictEqual(reasonOf(nested(Codec.nestingDepthMax - 1, 0x91)), "ok")
      assert.strictEqual(reasonOf(nested(Codec.nestingDepthMax, 0x91)), "Malformed")
      assert.strictEqual(reasonOf(nested(60_000, 0x91)), "Malformed")
      assert.strictEqual(reasonOf(nested(60_000, 0x81)), "Malformed") // maps with non-string keys
    })

    it("rejects msgpackr's stateful and code-bearing extensions", () => {
      const cases = [
        "d4 72 40", // record definition (0x72)
        "d5 72 40 00",
        "c7 03 72 93 01 02", // record definition via ext8
        "d4 69 00", // structured-clone object reference
        "d6 70 00000001", // pointer
        "c7 03 74 01 02 03", // typed array
        "d4 65 93", // Error
        "c7 02 78 92 a1", // RegExp
        "d4 73 91", // Set
        "c7 01 62 00", // bundled strings
        "c7 01 42 01", // bigint extension
        "d4 01 00", // an unknown extension
        "c1", // never-used token
        "" // empty input
      ]
      for (const text of cases) assert.strictEqual(reasonOf(hex(text)), "Malformed", text)
    })

    it("needs string map keys and does not let __proto__ pollute", () => {
      assert.strictEqual(reasonOf(hex("81 01 02")), "Malformed")
      assert.strictEqual(reasonOf(hex("81 91 a0 02")), "Malformed")
      const decoded = decodeOk(hex("81 a9 5f5f70726f746f5f5f 81 a1 78 01")) as Record<string, unknown>
      assert.strictEqual(Object.getPrototypeOf(decoded), Object.prototype)
      assert.isUndefined(({} as Record<string, unknown>)["x"])
    })

    it("reads positive fixints as numbers, never as records", () => {
      assert.strictEqual(decodeOk(hex("40")), 0x40)
      assert.deepStrictEqual(decodeOk(hex("92 7f 41")), [0x7f, 0x41])
    })
  })

  describe("decodeWith", () => {
    const Hello = Schema.Struct({ name: Schema.String, bytes: Schema.Uint8ArrayFromSelf, amount: Schema.BigIntFromSelf })
    const decodeHello = Codec.decodeWith(Hello, maxBytes)

    it("decodes a matching value", () => {
      const value = { name: "a", bytes: new Uint8Array([1]), amount: 5n }
      const decoded = decodeHello(Codec.encode(value))
      assert.isTrue(Either.isRight(decoded))
      if (Either.isRight(decoded)) assert.strictEqual(decoded.right.amount, 5n)
    })

    it("reports a mismatch as Schema and passes codec failures through", () => {
      const mismatch = decodeHello(Codec.encode({ name: 1, bytes: new Uint8Array(0), amount: 5n }))
      assert.isTrue(Either.isLeft(mismatch) && mismatch.left.reason === "Schema" && (mismatch.left.detail ?? "").includes("name"))
      const long = decodeHello(Codec.encode({ name: "x".repeat(10_000) }))
      assert.isTrue(Either.isLeft(long) && (long.left.detail ?? "").length <= Codec.schemaDetailCharsMax)
      const malformed = decodeHello(hex("c1"))
      assert.isTrue(Either.isLeft(malformed) && malformed.left.reason === "Malformed")
      const tooLarge = Codec.decodeWith(Hello, 2)(Codec.encode({ name: "a" }))
      assert.isTrue(Either.isLeft(tooLarge) && tooLarge.left.reason === "TooLarge")
    })
  })
})
