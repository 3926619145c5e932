import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Amount from "../src/Amount.js"
import * as Params from "../src/Params.js"
import { reasonOf } from "./fixtures.js"

const upt = 8_000_000_000n
const parsed = (text: string, units = upt) => Either.getOrThrow(Amount.parse(text, units))
const anyAmount = fc.bigInt(0n, Amount.max).map((value) => value as Amount.Amount)

describe("Amount", () => {
  it("reads decimal tokens and raw hex units", () => {
    assert.strictEqual(parsed("12.5"), 100_000_000_000n)
    assert.strictEqual(parsed("0x1DCD65000"), 8_000_000_000n)
    assert.strictEqual(parsed("0x1dcd65000"), 8_000_000_000n)
    assert.strictEqual(parsed(" 1 "), upt)
    assert.strictEqual(parsed("0"), 0n)
    assert.strictEqual(parsed("0.000000000125"), 1n)
    assert.strictEqual(parsed("0x" + "F".repeat(16)), Amount.max)
  })

  it("formats like the CLI", () => {
    assert.strictEqual(Amount.format(parsed("0x1DCD65000"), upt), "1.0 WEFT")
    assert.strictEqual(Amount.format(parsed("50"), upt), "50.0 WEFT")
    assert.strictEqual(Amount.format(parsed("12.5"), upt, "TEST"), "12.5 TEST")
    assert.strictEqual(Amount.format(1n as Amount.Amount, upt), "0.000000000125 WEFT")
    assert.strictEqual(Amount.formatUnits(8_000_000_000n as Amount.Amount), "0x1DCD65000")
  })

  it.prop("format and parse round-trip every amount, both forms", [anyAmount, fc.constantFrom(1n, 10n, 8_000_000_000n, 2n ** 63n, 5n ** 27n, 1_000_000n)], ([amount, units]) => {
    assert.strictEqual(parsed(Amount.toDecimal(amount, units), units), amount)
    assert.strictEqual(parsed(Amount.formatUnits(amount), units), amount)
  })

  it("rejects hostile input with a typed reason", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["-1", "NegativeAmount"],
      ["-0x1", "NegativeAmount"],
      ["-0", "NegativeAmount"],
      ["0x10000000000000000", "AmountTooLarge"],
      ["2305843009.213693952", "AmountTooLarge"],
      ["99999999999999999999999", "AmountTooLarge"],
      ["1.0000000001", "Precision"],
      ["0.0000000000625", "Precision"],
      ["", "Malformed"],
      ["abc", "Malformed"],
      ["1e5", "Malformed"],
      ["1.", "Malformed"],
      [".5", "Malformed"],
      ["0x", "Malformed"],
      ["1,5", "Malformed"],
      ["1 2", "Malformed"],
      ["NaN", "Malformed"],
      ["Infinity", "Malformed"],
      ["１", "Malformed"],
      ["+1", "Malformed"],
      ["0x1.5", "Malformed"],
      ["1".repeat(101), "Malformed"]
    ]
    for (const [text, reason] of cases) assert.strictEqual(reasonOf(Amount.parse(text, upt)), reason, text)
  })

  it.prop("never throws on any text", [fc.string({ maxLength: 80 })], ([text]) => {
    const result = Amount.parse(text, upt)
    if (Either.isRight(result)) assert.isTrue(result.right >= 0n && result.right <= Amount.max)
  })

  it("checks every sum and difference", () => {
    assert.strictEqual(reasonOf(Amount.add(Amount.max, 1n as Amount.Amount)), "Overflow")
    assert.strictEqual(reasonOf(Amount.sum([Amount.max, 1n as Amount.Amount, Amount.max])), "Overflow")
    assert.strictEqual(reasonOf(Amount.sub(1n as Amount.Amount, 2n as Amount.Amount)), "NegativeAmount")
    assert.strictEqual(reasonOf(Amount.fromBigInt(-1n)), "NegativeAmount")
    assert.strictEqual(reasonOf(Amount.fromBigInt(2n ** 64n)), "AmountTooLarge")
    assert.strictEqual(Either.getOrThrow(Amount.add(Amount.max - 1n as Amount.Amount, 1n as Amount.Amount)), Amount.max)
  })
})

describe("Params", () => {
  it("refuses parameters that cannot work", () => {
    assert.strictEqual(reasonOf(Params.make()), "ok")
    assert.strictEqual(reasonOf(Params.make({ unitsPerToken: 3n })), "BadParams")
    assert.strictEqual(reasonOf(Params.make({ unitsPerToken: 0n })), "BadParams")
    assert.strictEqual(reasonOf(Params.make({ initialRewardUnits: Amount.max })), "BadParams")
    assert.strictEqual(reasonOf(Params.make({ chainId: "" })), "BadParams")
    assert.strictEqual(reasonOf(Params.make({ halvingIntervalBlocks: 0 })), "BadParams")
  })

  it("halves the reward and keeps total issuance below 2^64", () => {
    const params = Params.defaults
    assert.strictEqual(Params.rewardAt(params, 0), params.initialRewardUnits)
    assert.strictEqual(Params.rewardAt(params, params.halvingIntervalBlocks), params.initialRewardUnits / 2n)
    assert.strictEqual(Params.rewardAt(params, params.halvingIntervalBlocks * 64), 0n)
    assert.isTrue(Params.issuanceTotal(params) < 2n * params.initialRewardUnits * BigInt(params.halvingIntervalBlocks))
  })
})
