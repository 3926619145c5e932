/**
 * The canonical encoding of content-addressed values (DESIGN.md invariant 5): one byte string per value,
 * so its SHA-256 names the value. It is a strict subset of msgpack: nil, booleans, integers up to 64 bits
 * in their shortest form, UTF-8 strings, byte strings, arrays, and maps with string keys sorted bytewise.
 * No floats, no undefined, no extensions. The decoder accepts exactly what the encoder produces, so
 * decoding and re-encoding reproduces the input byte for byte.
 *
 * An integer is one value whatever its JS type: 5 and 5n encode alike, and decode as a number when they
 * are safe integers and as a bigint otherwise (`BigIntFromInteger` reads either back as a bigint).
 */
import { Either, Schema } from "effect"
import { createHash } from "node:crypto"
import { nestingDepthMax, schemaError } from "./Codec.js"
import { CodecError } from "./WeftError.js"

const uint64Max = 2n ** 64n - 1n
const int64Min = -(2n ** 63n)
const loneSurrogate = /\p{Cs}/u
const utf8 = new TextEncoder()
// fatal: invalid UTF-8 has no canonical string; ignoreBOM: a leading U+FEFF is content, not a marker.
const utf8Strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Thrown inside the encoder and decoder and caught at their entry points; never escapes this module. */
class Stop {
  constructor(readonly error: CodecError) {}
}

const stop = (reason: CodecError["reason"], detail: string): never => {
  throw new Stop(new CodecError({ reason, detail }))
}

/** A growable byte buffer. */
class Writer {
  bytes = new Uint8Array(256)
  view = new DataView(this.bytes.buffer)
  length = 0

  reserve(count: number): number {
    const at = this.length
    if (at + count > this.bytes.length) {
      const grown = new Uint8Array(Math.max(this.bytes.length * 2, at + count))
      grown.set(this.bytes.subarray(0, at))
      this.bytes = grown
      this.view = new DataView(grown.buffer)
    }
    this.length = at + count
    return at
  }

  byte(value: number): void {
    const at = this.reserve(1) // before reading this.bytes: reserve may replace it
    this.bytes[at] = value
  }

  /** A type byte followed by a big-endian unsigned field of 1, 2 or 4 bytes. */
  header(token: number, fieldBytes: 1 | 2 | 4, value: number): void {
    const at = this.reserve(1 + fieldBytes)
    this.bytes[at] = token
    if (fieldBytes === 1) this.bytes[at + 1] = value
    else if (fieldBytes === 2) this.view.setUint16(at + 1, value)
    else this.view.setUint32(at + 1, value)
  }

  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length)
    this.bytes.set(bytes, at)
  }
}

/** Writes the shortest header for a str, bin, array or map of `length`; `tokens` are its 8/16/32-bit forms. */
const writeLength = (writer: Writer, length: number, fix: { base: number; max: number } | undefined, tokens: readonly [number, number, number]) => {
  if (fix !== undefined && length <= fix.max) writer.byte(fix.base + length)
  else if (length <= 0xff && tokens[0] !== 0) writer.header(tokens[0], 1, length)
  else if (length <= 0xffff) writer.header(tokens[1], 2, length)
  else writer.header(tokens[2], 4, length)
}

const stringTokens = [0xd9, 0xda, 0xdb] as const
const binTokens = [0xc4, 0xc5, 0xc6] as const
const arrayTokens = [0, 0xdc, 0xdd] as const
const mapTokens = [0, 0xde, 0xdf] as const

const writeInteger = (writer: Writer, value: bigint | number): void => {
  const small = typeof value === "number" ? value : value >= -0x8000_0000n && value <= 0xffff_ffffn ? Number(value) : undefined
  if (small !== undefined) return writeSmallInteger(writer, small)
  const big = value as bigint
  if (big > uint64Max || big < int64Min) return stop("Unsupported", `integer ${big} does not fit in 64 bits`)
  const at = writer.reserve(9)
  writer.bytes[at] = big >= 0n ? 0xcf : 0xd3
  if (big >= 0n) writer.view.setBigUint64(at + 1, big)
  else writer.view.setBigInt64(at + 1, big)
}

const writeSmallInteger = (writer: Writer, value: number): void => {
  if (value >= 0) {
    if (value <= 0x7f) writer.byte(value)
    else if (value <= 0xff) writer.header(0xcc, 1, value)
    else if (value <= 0xffff) writer.header(0xcd, 2, value)
    else if (value <= 0xffff_ffff) writer.header(0xce, 4, value)
    else writeInteger(writer, BigInt(value))
    return
  }
  if (value >= -32) return writer.byte(value & 0xff)
  if (value < -0x8000_0000) return writeInteger(writer, BigInt(value))
  const [token, size] = value >= -0x80 ? [0xd0, 1] as const : value >= -0x8000 ? [0xd1, 2] as const : [0xd2, 4] as const
  // Two's complement of the value in `size` bytes, written as the unsigned field of that width.
  writer.header(token, size, size === 4 ? value >>> 0 : value & (size === 1 ? 0xff : 0xffff))
}

const writeString = (writer: Writer, text: string): void => {
  if (loneSurrogate.test(text)) stop("Unsupported", "string with a lone surrogate has no UTF-8 form")
  const bytes = utf8.encode(text)
  writeLength(writer, bytes.length, { base: 0xa0, max: 31 }, stringTokens)
  writer.raw(bytes)
}

const compareBytes = (a: Uint8Array, b: Uint8Array): number => {
  const length = Math.min(a.length, b.length)
  for (let index = 0; index < length; index++) {
    if (a[index] !== b[index]) return a[index]! - b[index]!
  }
  return a.length - b.length
}

const isPlainObject = (value: object): value is Record<string, unknown> => {
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

const writeMap = (writer: Writer, record: Record<string, unknown>, nesting: number): void => {
  const entries = Object.keys(record).map((key) => {
    if (loneSurrogate.test(key)) stop("Unsupported", "map key with a lone surrogate has no UTF-8 form")
    return [utf8.encode(key), record[key]] as const
  })
  entries.sort(([a], [b]) => compareBytes(a, b))
  writeLength(writer, entries.length, { base: 0x80, max: 15 }, mapTokens)
  for (const [key, value] of entries) {
    writeLength(writer, key.length, { base: 0xa0, max: 31 }, stringTokens)
    writer.raw(key)
    writeValue(writer, value, nesting)
  }
}

const writeContainer = (writer: Writer, value: object, nesting: number): void => {
  // Also what stops a cyclic value: it is just infinitely deep.
  if (nesting + 1 > nestingDepthMax) stop("Unsupported", `nesting deeper than ${nestingDepthMax}`)
  if (Array.isArray(value)) {
    writeLength(writer, value.length, { base: 0x90, max: 15 }, arrayTokens)
    for (const item of value) writeValue(writer, item, nesting + 1)
  } else if (isPlainObject(value)) {
    writeMap(writer, value, nesting + 1)
  } else {
    stop("Unsupported", `no canonical form for ${value.constructor?.name ?? "this object"}`)
  }
}

const writeValue = (writer: Writer, value: unknown, nesting: number): void => {
  switch (typeof value) {
    case "boolean":
      return writer.byte(value ? 0xc3 : 0xc2)
    case "number":
      return Number.isSafeInteger(value) ? writeSmallInteger(writer, value) : stop("Unsupported", `${value} is not a safe integer`)
    case "bigint":
      return writeInteger(writer, value)
    case "string":
      return writeString(writer, value)
    case "object":
      if (value === null) return writer.byte(0xc0)
      if (value instanceof Uint8Array) {
        writeLength(writer, value.length, undefined, binTokens)
        return writer.raw(value)
      }
      return writeContainer(writer, value, nesting)
  }
  return stop("Unsupported", `no canonical form for ${typeof value}`)
}

const guarded = <A>(run: () => A): Either.Either<A, CodecError> => {
  try {
    return Either.right(run())
  } catch (cause) {
    if (cause instanceof Stop) return Either.left(cause.error)
    // Only a bounds overrun in the reader can land here (the DataView getters range-check): truncation.
    return Either.left(new CodecError({ reason: "Malformed", detail: cause instanceof Error ? cause.message : String(cause) }))
  }
}

/** The one canonical byte string of a value; Unsupported for floats, undefined, non-plain objects, integers beyond 64 bits, lone surrogates, or nesting beyond `Codec.nestingDepthMax`. Independent of key insertion order. */
export const encode = (value: unknown): Either.Either<Uint8Array, CodecError> =>
  guarded(() => {
    const writer = new Writer()
    writeValue(writer, value, 0)
    return writer.bytes.slice(0, writer.length)
  })

/** A cursor over untrusted bytes that checks canonical form as it goes. */
class Reader {
  at = 0
  readonly view: DataView
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  take(count: number): number {
    const at = this.at
    if (count > this.bytes.length - at) stop("Malformed", `truncated at byte ${at}`)
    this.at = at + count
    return at
  }

  /** The big-endian unsigned field of 1, 2 or 4 bytes after the type byte. */
  field(size: 1 | 2 | 4): number {
    const at = this.take(size)
    return size === 1 ? this.bytes[at]! : size === 2 ? this.view.getUint16(at) : this.view.getUint32(at)
  }
}

const fieldSizes = [1, 2, 4] as const

/** Fails unless `value` needed the integer form it came in (`min`..`max` is where that form is the shortest). */
const shortest = <A extends number | bigint>(reader: Reader, value: A, min: A, max: A): A =>
  value >= min && value <= max ? value : stop("NonCanonical", `integer ${value} before byte ${reader.at} is not in its shortest form`)

const toSafe = (value: bigint): number | bigint =>
  value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value

const readInteger = (reader: Reader, token: number): number | bigint => {
  const { view } = reader
  switch (token) {
    case 0xcc: return shortest(reader, reader.field(1), 0x80, 0xff)
    case 0xcd: return shortest(reader, reader.field(2), 0x100, 0xffff)
    case 0xce: return shortest(reader, reader.field(4), 0x1_0000, 0xffff_ffff)
    case 0xcf: return toSafe(shortest(reader, view.getBigUint64(reader.take(8)), 0x1_0000_0000n, uint64Max))
    case 0xd0: return shortest(reader, view.getInt8(reader.take(1)), -0x80, -33)
    case 0xd1: return shortest(reader, view.getInt16(reader.take(2)), -0x8000, -0x81)
    case 0xd2: return shortest(reader, view.getInt32(reader.take(4)), -0x8000_0000, -0x8001)
    default: return toSafe(shortest(reader, view.getBigInt64(reader.take(8)), int64Min, -0x8000_0001n))
  }
}

/** Smallest length each 8/16/32-bit length form may carry, for it to be the shortest form. */
const stringFloors = [32, 0x100, 0x1_0000] as const
const binFloors = [0, 0x100, 0x1_0000] as const
/** Arrays and maps have no 8-bit form, so their 16-bit form starts right after the fix form. */
const containerFloors = [Infinity, 16, 0x1_0000] as const

/** Reads the length field of form `form` (0, 1, 2: 8, 16, 32 bits) and checks no shorter form would fit. */
const readLength = (reader: Reader, form: number, floors: readonly [number, number, number]): number => {
  const length = reader.field(fieldSizes[form]!)
  return length >= floors[form]! ? length : stop("NonCanonical", `length ${length} before byte ${reader.at} is not in its shortest form`)
}

const readString = (reader: Reader, length: number): string => {
  const at = reader.take(length)
  try {
    return utf8Strict.decode(reader.bytes.subarray(at, at + length))
  } catch {
    return stop("Malformed", `invalid UTF-8 at byte ${at}`)
  }
}

/** Fails before any work when a container claims more items than the remaining bytes could hold. */
const checkCount = (reader: Reader, items: number): number =>
  items <= reader.bytes.length - reader.at ? items : stop("Malformed", `container before byte ${reader.at} claims ${items} items`)

const readArray = (reader: Reader, length: number, nesting: number): Array<unknown> => {
  checkCount(reader, length)
  const items: Array<unknown> = []
  for (let index = 0; index < length; index++) items.push(readValue(reader, nesting))
  return items
}

const readKey = (reader: Reader): Uint8Array => {
  const token = reader.bytes[reader.take(1)]!
  const length =
    token >= 0xa0 && token <= 0xbf ? token - 0xa0
    : token >= 0xd9 && token <= 0xdb ? readLength(reader, token - 0xd9, stringFloors)
    : stop("NonCanonical", `map key before byte ${reader.at} is not a string`)
  const at = reader.take(length)
  return reader.bytes.subarray(at, at + length)
}

const readMap = (reader: Reader, length: number, nesting: number): Record<string, unknown> => {
  checkCount(reader, length * 2)
  const record: Record<string, unknown> = {}
  let previous: Uint8Array | undefined
  for (let index = 0; index < length; index++) {
    const keyBytes = readKey(reader)
    if (previous !== undefined && compareBytes(previous, keyBytes) >= 0) stop("NonCanonical", `map key before byte ${reader.at} is out of order or repeated`)
    previous = keyBytes
    let key: string
    try {
      key = utf8Strict.decode(keyBytes)
    } catch {
      return stop("Malformed", `invalid UTF-8 in a map key before byte ${reader.at}`)
    }
    // defineProperty, so a "__proto__" key is plain data rather than a prototype swap.
    Object.defineProperty(record, key, { value: readValue(reader, nesting), enumerable: true, writable: true, configurable: true })
  }
  return record
}

const readBin = (reader: Reader, length: number): Uint8Array => {
  const at = reader.take(length)
  return reader.bytes.slice(at, at + length)
}

const enterContainer = (reader: Reader, nesting: number): number =>
  nesting + 1 <= nestingDepthMax ? nesting + 1 : stop("Malformed", `nesting deeper than ${nestingDepthMax} at byte ${reader.at}`)

const readValue = (reader: Reader, nesting: number): unknown => {
  const token = reader.bytes[reader.take(1)]!
  if (token <= 0x7f) return token
  if (token >= 0xe0) return token - 0x100
  if (token <= 0x8f) return readMap(reader, token - 0x80, enterContainer(reader, nesting))
  if (token <= 0x9f) return readArray(reader, token - 0x90, enterContainer(reader, nesting))
  if (token <= 0xbf) return readString(reader, token - 0xa0)
  switch (token) {
    case 0xc0: return null
    case 0xc2: return false
    case 0xc3: return true
    case 0xc4: case 0xc5: case 0xc6: return readBin(reader, readLength(reader, token - 0xc4, binFloors))
    case 0xd9: case 0xda: case 0xdb: return readString(reader, readLength(reader, token - 0xd9, stringFloors))
    case 0xdc: case 0xdd: return readArray(reader, readLength(reader, token - 0xdb, containerFloors), enterContainer(reader, nesting))
    case 0xde: case 0xdf: return readMap(reader, readLength(reader, token - 0xdd, containerFloors), enterContainer(reader, nesting))
    case 0xc1: return stop("Malformed", `invalid token 0xc1 at byte ${reader.at - 1}`)
  }
  if (token >= 0xcc && token <= 0xd3) return readInteger(reader, token)
  return stop("NonCanonical", `msgpack type 0x${token.toString(16)} at byte ${reader.at - 1} has no place in the canonical form`)
}

/** Decodes canonical bytes: TooLarge past `maxBytes`, Malformed for broken msgpack, NonCanonical for valid msgpack in any other form than `encode` writes. Never throws. */
export const decode = (bytes: Uint8Array, maxBytes: number): Either.Either<unknown, CodecError> => {
  if (bytes.length > maxBytes) {
    return Either.left(new CodecError({ reason: "TooLarge", detail: `${bytes.length} bytes, at most ${maxBytes}` }))
  }
  return guarded(() => {
    const reader = new Reader(bytes)
    const value = readValue(reader, 0)
    return reader.at === bytes.length ? value : stop("Malformed", `${bytes.length - reader.at} trailing bytes`)
  })
}

/** `decode`, then a Schema; a mismatch is CodecError("Schema") with the parse message as detail. */
export const decodeWith = <A, I>(schema: Schema.Schema<A, I>, maxBytes: number) => {
  const decodeSchema = Schema.decodeUnknownEither(schema)
  return (bytes: Uint8Array): Either.Either<A, CodecError> =>
    Either.flatMap(decode(bytes, maxBytes), (value) => Either.mapLeft(decodeSchema(value), schemaError))
}

/** SHA-256 of canonical bytes. */
export const digest = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash("sha256").update(bytes).digest())

/** SHA-256 of the canonical encoding: the value's content address. */
export const hash = (value: unknown): Either.Either<Uint8Array, CodecError> => Either.map(encode(value), digest)

/** A bigint read from a canonical integer, which decodes as a number when it is a safe integer. */
export const BigIntFromInteger: Schema.Schema<bigint, number | bigint> = Schema.transform(
  Schema.Union(Schema.Int, Schema.BigIntFromSelf),
  Schema.BigIntFromSelf,
  { strict: true, decode: (integer) => BigInt(integer), encode: (integer) => integer }
)
