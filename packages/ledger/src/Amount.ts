/**
 * Amounts of value: non-negative `bigint` base units below 2^64 (DESIGN.md invariant 4). Every sum and
 * difference is checked. People write amounts as decimal tokens (`12.5`) or as raw units in hex
 * (`0x1DCD65000`); `unitsPerToken` (a chain parameter) converts, and must be 2^a·5^b so that every
 * amount has an exact, finite decimal form and `parse(format(x)) = x`.
 */
import { Brand, Either } from "effect"
import { LedgerError, make as fail } from "./LedgerError.js"

/** A checked amount of base units: 0 ≤ amount < 2^64. */
export type Amount = bigint & Brand.Brand<"Amount">

/** The largest amount, 2^64 − 1. */
export const max = (2n ** 64n - 1n) as Amount

/** No value. */
export const zero = 0n as Amount

/** Longest amount text `parse` reads (a format bound: 20 whole digits, a point, and up to 64 decimals, the most `decimalsOf` allows). */
export const textCharsMax = 100

/** Checks that a bigint is an amount: NegativeAmount below zero, AmountTooLarge at 2^64 or more. */
export const fromBigInt = (value: bigint): Either.Either<Amount, LedgerError> =>
  value < 0n
    ? Either.left(fail("NegativeAmount", `${value} is negative`))
    : value > max
      ? Either.left(fail("AmountTooLarge", `${value} is not below 2^64`))
      : Either.right(value as Amount)

/** The checked sum: Overflow at 2^64 or more. */
export const add = (a: Amount, b: Amount): Either.Either<Amount, LedgerError> => {
  const total = a + b
  return total > max ? Either.left(fail("Overflow", `${a} + ${b} reaches 2^64`)) : Either.right(total as Amount)
}

/** The checked difference: NegativeAmount when `b` exceeds `a`. */
export const sub = (a: Amount, b: Amount): Either.Either<Amount, LedgerError> =>
  b > a ? Either.left(fail("NegativeAmount", `${a} - ${b} is negative`)) : Either.right((a - b) as Amount)

/** The checked sum of many amounts. */
export const sum = (amounts: Iterable<Amount>): Either.Either<Amount, LedgerError> => {
  let total = 0n
  for (const amount of amounts) {
    total += amount
    // Checked at every step, so a hostile list never builds a huge bigint.
    if (total > max) return Either.left(fail("Overflow", "the sum reaches 2^64"))
  }
  return Either.right(total as Amount)
}

const hexForm = /^0[xX][0-9a-fA-F]+$/
const decimalForm = /^(\d+)(?:\.(\d+))?$/

const parseDecimal = (whole: string, fraction: string, unitsPerToken: bigint, text: string): Either.Either<Amount, LedgerError> => {
  const scale = 10n ** BigInt(fraction.length)
  const fractionUnits = BigInt(fraction === "" ? "0" : fraction) * unitsPerToken
  if (fractionUnits % scale !== 0n) {
    return Either.left(fail("Precision", `${text} is not a whole number of units (1 token = ${unitsPerToken} units)`))
  }
  return fromBigInt(BigInt(whole) * unitsPerToken + fractionUnits / scale)
}

/** Parses user input: decimal tokens (`12.5`) or raw units in hex (`0x1DCD65000`); surrounding blanks are ignored. */
export const parse = (input: string, unitsPerToken: bigint): Either.Either<Amount, LedgerError> => {
  const text = input.trim()
  if (text.length > textCharsMax) return Either.left(fail("Malformed", `an amount has at most ${textCharsMax} characters`))
  if (text.startsWith("-")) return Either.left(fail("NegativeAmount", `${text} is negative`))
  if (hexForm.test(text)) return fromBigInt(BigInt(text))
  const match = decimalForm.exec(text)
  if (match === null) return Either.left(fail("Malformed", `not an amount: ${JSON.stringify(text)} (write 12.5 for tokens or 0x1DCD65000 for units)`))
  return parseDecimal(match[1]!, match[2] ?? "", unitsPerToken, text)
}

/** Decimal digits needed to write any fraction of a token exactly: the least k with unitsPerToken | 10^k. */
export const decimalsOf = (unitsPerToken: bigint): number | undefined => {
  let power = 1n
  for (let digits = 0; digits <= 64; digits++) {
    if (power % unitsPerToken === 0n) return digits
    power *= 10n
  }
  return undefined
}

/** The decimal token form with at least one decimal, e.g. `12.5` or `50.0` (no symbol). */
export const toDecimal = (amount: Amount, unitsPerToken: bigint): string => {
  const whole = amount / unitsPerToken
  const rest = amount % unitsPerToken
  if (rest === 0n) return `${whole}.0`
  const digits = decimalsOf(unitsPerToken)
  if (digits === undefined) throw new Error(`Amount.toDecimal: ${unitsPerToken} units per token has no finite decimal form`)
  const fraction = ((rest * 10n ** BigInt(digits)) / unitsPerToken).toString().padStart(digits, "0").replace(/0+$/, "")
  return `${whole}.${fraction}`
}

/** `12.5 WEFT`: the amount in tokens with the chain's symbol. */
export const format = (amount: Amount, unitsPerToken: bigint, symbol = "WEFT"): string =>
  `${toDecimal(amount, unitsPerToken)} ${symbol}`

/** The raw-units form `parse` reads back, e.g. `0x1DCD65000`. */
export const formatUnits = (amount: Amount): string => `0x${amount.toString(16).toUpperCase()}`
