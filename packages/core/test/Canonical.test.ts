import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { createHash } from "node:crypto"
import * as Canonical from "../src/Canonical.js"
import * as Codec from "../src/Codec.js"

const maxBytes = 64 * 1024

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replace(/\s/g, ""), "hex"))
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

const encodeOk = (value: unknown): Uint8Array => {
  const result = Canonical.encode(value)
  if (Either.isLeft(result)) assert.fail(`expected bytes, got ${result.left.reason}: ${result.left.detail}`)
  return result.right
}

const decodeOk = (bytes: Uint8Array): unknown => {
  const result = Canonical.decode(bytes, maxBytes)
  if (Either.isLeft(result)) assert.fail(`expected a value, got ${result.left.reason}: ${result.left.detail}`)
  return result.right
}

const encodeReason = (value: unknown) => {
  const result = Canonical.encode(value)
  return Either.isLeft(result) ? result.left.reason : "ok"
}

const decodeReason = (bytes: Uint8Array, limit = maxBytes) => {
  const result = Canonical.decode(bytes, limit)
  return Either.isLeft(result) ? result.left.reason : "ok"
}

/** What a value decodes back as: integers that are safe come back as numbers, byte strings as plain Uint8Arrays. */
const expected = (value: unknown): unknown => {
  if (typeof value === "bigint") return value >= Number.MIN_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER ? Number(value) : value
  if (value instanceof Uint8Array) return Uint8Array.from(value)
  if (Array.isArray(value)) return value.map(expected)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, expected(inner)]))
  }
  return value
}

const wellFormed = (text: string) => !/\p{Cs}/u.test(text)
const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 12 }).filter(wellFormed))
const key = text.filter((candidate) => candidate !== "__proto__")

/** Every value the canonical form can hold. */
const canonicalValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.bigInt(-(2n ** 63n), 2n ** 64n - 1n),
    fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1),
    text,
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie("value"), { maxLength: 6 }),
    fc.dictionary(key, tie("value"), { maxKeys: 6 })
  )
})).value

/** Bytes built from msgpack-ish tokens, so random input often parses far enough to test the canonical checks. */
const tokenSoup = fc
  .array(
    fc.oneof(
      fc.constantFrom(0x00, 0x05, 0x7f, 0x80, 0x81, 0x82, 0x90, 0x91, 0x93, 0xa0, 0xa1, 0xa2, 0xc0, 0xc2, 0xc3, 0xc4, 0xcc, 0xcd, 0xcf, 0xd0, 0xd3, 0xd9, 0xdc, 0xde, 0xe0, 0xff, 0x61, 0x62),
      fc.integer({ min: 0, max: 255 })
    ),
    { maxLength: 24 }
  )
  .map((bytes) => Uint8Array.from(bytes))

/** Whatever decodes must re-encode to exactly the same bytes: one byte string per value. */
const assertCanonicalOrRejected = (bytes: Uint8Array) => {
  const decoded = Canonical.decode(bytes, maxBytes)
  if (Either.isRight(decoded)) assert.strictEqual(toHex(encodeOk(decoded.right)), toHex(bytes))
}

const nested = (depth: number) => new Uint8Array([...new Array<number>(depth).fill(0x91), 0x90])
const nestedValue = (depth: number): unknown => (depth === 0 ? [] : [nestedValue(depth - 1)])

describe("Canonical", () => {
  describe("encode", () => {
    it("writes integers in their shortest form", () => {
      const cases: Array<[number | bigint, string]> = [
        [0, "00"], [127, "7f"], [128, "cc80"], [255, "ccff"], [256, "cd0100"], [65535, "cdffff"],
        [65536, "ce00010000"], [2 ** 32 - 1, "ceffffffff"], [2 ** 32, "cf0000000100000000"],
        [Number.MAX_SAFE_INTEGER, "cf001fffffffffffff"], [2n ** 64n - 1n, "cfffffffffffffffff"],
        [-1, "ff"], [-32, "e0"], [-33, "d0df"], [-128, "d080"], [-129, "d1ff7f"], [-32768, "d18000"],
        [-32769, "d2ffff7fff"], [-(2 ** 31), "d280000000"], [-(2 ** 31) - 1, "d3ffffffff7fffffff"],
        [-(2n ** 63n), "d38000000000000000"], [5n, "05"], [-0, "00"]
      ]
      for (const [value, bytes] of cases) assert.strictEqual(toHex(encodeOk(value)), bytes, String(value))
    })

    it("writes strings, bytes, arrays and maps with their shortest headers", () => {
      const cases: Array<[unknown, string]> = [
        [null, "c0"], [false, "c2"], [true, "c3"], ["", "a0"], ["a", "a161"],
        ["x".repeat(31), "bf" + "78".repeat(31)], ["x".repeat(32), "d920" + "78".repeat(32)],
        ["x".repeat(256), "da0100" + "78".repeat(256)], [new Uint8Array(0), "c400"], [new Uint8Array([1, 2]), "c4020102"],
        [[], "90"], [new Array(15).fill(0), "9f" + "00".repeat(15)], [new Array(16).fill(0), "dc0010" + "00".repeat(16)],
        [{}, "80"], [{ b: 1, a: 2 }, "82a16102a16201"]
      ]
      for (const [value, bytes] of cases) assert.strictEqual(toHex(encodeOk(value)), bytes)
    })

    it("writes and reads back the 16- and 32-bit forms of large values", () => {
      const sixteenKeys = Object.fromEntries(Array.from({ length: 16 }, (_, index) => [`k${index}`, index]))
      const cases: Array<[unknown, string]> = [
        ["x".repeat(70_000), "db00011170"],
        [new Uint8Array(300), "c5012c"],
        [new Uint8Array(70_000), "c600011170"],
        [new Array(70_000).fill(1), "dd00011170"],
        [sixteenKeys, "de0010"]
      ]
      for (const [value, prefix] of cases) {
        const bytes = encodeOk(value)
        assert.strictEqual(toHex(bytes.subarray(0, prefix.length / 2)), prefix)
        const decoded = Canonical.decode(bytes, 1024 * 1024)
        assert.deepStrictEqual(decoded, Either.right(value))
      }
    })

    it("sorts map keys by their UTF-8 bytes, not by UTF-16 code units", () => {
      // U+FFFF (ef bf bf) sorts before U+10000 (f0 90 80 80) in UTF-8 but after it in UTF-16.
      const bytes = encodeOk({ "\u{10000}": 1, "\uffff": 2, "": 3, "a": 4, "aa": 5 })
      assert.strictEqual(toHex(bytes), "85a003a16104a2616105a3efbfbf02a4f090808001")
    })

    it.prop("does not depend on key insertion order", [fc.dictionary(key, canonicalValue, { maxKeys: 8 })], ([record]) => {
      const reversed = Object.fromEntries(Object.entries(record).reverse())
      assert.strictEqual(toHex(encodeOk(reversed)), toHex(encodeOk(record)))
    })

    it("refuses what has no canonical form", () => {
      const cyclic: Array<unknown> = []
      cyclic.push(cyclic)
      const cases: Array<unknown> = [
        1.5, NaN, Infinity, 2 ** 53, -(2 ** 53), undefined, { a: undefined }, [undefined], new Date(0), new Map(),
        new Set(), Symbol("s"), () => 1, 2n ** 64n, -(2n ** 63n) - 1n, "\ud800", { "\udc00": 1 }, cyclic,
        nestedValue(Codec.nestingDepthMax), new (class Point { x = 1 })(), new Float64Array(1)
      ]
      for (const value of cases) assert.strictEqual(encodeReason(value), "Unsupported", String(value))
      assert.strictEqual(encodeReason(nestedValue(Codec.nestingDepthMax - 1)), "ok")
    })

    it("accepts null-prototype objects and an own __proto__ key as plain data", () => {
      const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 })
      assert.strictEqual(toHex(encodeOk(bare)), toHex(encodeOk({ a: 1 })))
      const tricky = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>
      const decoded = decodeOk(encodeOk(tricky)) as Record<string, unknown>
      assert.strictEqual(Object.getPrototypeOf(decoded), Object.prototype)
      assert.deepStrictEqual(Object.keys(decoded), ["__proto__"])
      assert.isUndefined(({} as Record<string, unknown>)["polluted"])
      assert.strictEqual(toHex(encodeOk(decoded)), toHex(encodeOk(tricky)))
    })
  })

  describe("round trip", () => {
    it.prop("decode(encode(v)) equals v, and encode(decode(b)) reproduces b", [canonicalValue], ([value]) => {
      const bytes = encodeOk(value)
      const decoded = decodeOk(bytes)
      assert.deepStrictEqual(decoded, expected(value))
      assert.strictEqual(toHex(encodeOk(decoded)), toHex(bytes))
    }, { fastCheck: { numRuns: 1000 } })

    it.prop("is plain msgpack that the wire codec reads too", [canonicalValue], ([value]) => {
      assert.isTrue(Either.isRight(Codec.decode(encodeOk(value), maxBytes)))
    })

    it("keeps a leading byte-order mark as content", () => {
      assert.strictEqual(decodeOk(encodeOk("\ufeffa")), "\ufeffa")
    })
  })

  describe("decode of untrusted bytes", () => {
    it("rejects every non-canonical variant of a valid value", () => {
      const cases = [
        "cc05", // 5 as uint8
        "cd0080", // 128 as uint16
        "ce0000ffff", // 65535 as uint32
        "cf00000000ffffffff", // 2^32-1 as uint64
        "d005", // 5 as int8
        "d0ff", // -1 as int8
        "d1ff80", // -128 as int16
        "d2ffff8000", // -32768 as int32
        "d3ffffffff80000000", // -2^31 as int64
        "d90161", // "a" as str8
        "da000161", // "a" as str16
        "c5000101", // a 1-byte bin as bin16
        "dc000100", // a 1-item array as array16
        "dd0000001000000000000000000000000000000000", // 16 items as array32
        "de0001a16101", // {a: 1} as map16, the way msgpackr writes objects
        "82a16201a16102", // keys out of order
        "82a16101a16102", // duplicate key
        "810102", // integer key
        "cb3ff8000000000000", // a float64
        "ca3fc00000", // a float32
        "d40000", // an extension (msgpackr's undefined)
        "d6ff00000000" // a timestamp
      ]
      for (const bytes of cases) assert.strictEqual(decodeReason(hex(bytes)), "NonCanonical", bytes)
      assert.strictEqual(decodeReason(Codec.encode({ a: 1 })), "NonCanonical")
    })

    it("rejects broken msgpack as Malformed", () => {
      const cases = [
        "", "c1", "a261", "92 01", "0000", "cf0000", "dd ffffffff 01 02", "df ffffffff a161 01",
        "db ffffffff 61", "c6 ffffffff", "a2 c328", // invalid UTF-8
        "81 a2c328 01" // invalid UTF-8 key
      ]
      for (const bytes of cases) assert.strictEqual(decodeReason(hex(bytes)), "Malformed", bytes)
    })

    it("bounds size and nesting", () => {
      const bytes = encodeOk("x".repeat(100))
      assert.strictEqual(decodeReason(bytes, bytes.length), "ok")
      assert.strictEqual(decodeReason(bytes, bytes.length - 1), "TooLarge")
      assert.strictEqual(decodeReason(new Uint8Array(11).fill(0xc1), 10), "TooLarge")
      assert.strictEqual(decodeReason(nested(Codec.nestingDepthMax - 1)), "ok")
      assert.strictEqual(decodeReason(nested(Codec.nestingDepthMax)), "Malformed")
      assert.strictEqual(decodeReason(nested(60_000), 100_000), "Malformed")
    })

    it.prop("never throws on random bytes, and what decodes is canonical", [fc.uint8Array({ maxLength: 64 })], ([bytes]) => {
      assertCanonicalOrRejected(bytes)
    }, { fastCheck: { numRuns: 3000 } })

    it.prop("never throws on msgpack-like token soup, and what decodes is canonical", [tokenSoup], ([bytes]) => {
      assertCanonicalOrRejected(bytes)
    }, { fastCheck: { numRuns: 5000 } })

    it.prop("accepts msgpackr's encodings only when they happen to be canonical", [canonicalValue], ([value]) => {
      assertCanonicalOrRejected(Codec.encode(value))
    })

    it.prop(
      "rejects truncated and extended encodings; bit flips never throw",
      [canonicalValue, fc.nat(), fc.integer({ min: 0, max: 7 }), fc.uint8Array({ minLength: 1, maxLength: 8 })],
      ([value, index, bit, extra]) => {
        const bytes = encodeOk(value)
        assert.strictEqual(decodeReason(bytes.subarray(0, index % bytes.length)), "Malformed")
        assert.strictEqual(decodeReason(new Uint8Array([...bytes, ...extra])), "Malformed")
        const flipped = Uint8Array.from(bytes)
        flipped[index % bytes.length] = flipped[index % bytes.length]! ^ (1 << bit)
        assertCanonicalOrRejected(flipped)
      },
      { fastCheck: { numRuns: 1000 } }
    )
  })

  describe("hash", () => {
    it("is the SHA-256 of the canonical encoding, whatever the key order", () => {
      const value = { b: [1, 2n ** 60n, "x"], a: new Uint8Array([9]) }
      const hash = Either.getOrThrow(Canonical.hash(value))
      assert.strictEqual(hash.length, 32)
      assert.strictEqual(toHex(hash), createHash("sha256").update(encodeOk(value)).digest("hex"))
      assert.deepStrictEqual(Canonical.hash({ a: new Uint8Array([9]), b: [1, 2n ** 60n, "x"] }), Either.right(hash))
      assert.notDeepEqual(Either.getOrThrow(Canonical.hash({ ...value, c: null })), hash)
      assert.isTrue(Either.isLeft(Canonical.hash({ a: 0.5 })))
    })
  })

  describe("schemas", () => {
    const Transfer = Schema.Struct({ to: Schema.String, amount: Canonical.BigIntFromInteger })

    it("reads integers back as bigints with BigIntFromInteger", () => {
      const decode = Canonical.decodeWith(Transfer, maxBytes)
      const small = decode(encodeOk({ to: "x", amount: 5n }))
      const large = decode(encodeOk({ to: "x", amount: 2n ** 64n - 1n }))
      assert.deepStrictEqual(small, Either.right({ to: "x", amount: 5n }))
      assert.deepStrictEqual(large, Either.right({ to: "x", amount: 2n ** 64n - 1n }))
      const mismatch = decode(encodeOk({ to: 1, amount: 5n }))
      assert.isTrue(Either.isLeft(mismatch) && mismatch.left.reason === "Schema")
      const nonCanonical = decode(Codec.encode({ to: "x", amount: 5n }))
      assert.isTrue(Either.isLeft(nonCanonical) && nonCanonical.left.reason === "NonCanonical")
    })
  })
})
