/**
 * The wire codec: msgpack through msgpackr with records off, so any msgpack implementation can read it.
 * Untrusted bytes are decoded once, at the edge: a size check, then a structural pre-scan that allocates
 * nothing, then msgpackr on bytes already known to be well formed. The pre-scan is what keeps msgpackr's
 * extensions (records, structured clone, typed arrays, errors, regexps) and its `new Array(n)` on a
 * length field away from hostile input.
 */
import { Either, ParseResult, Schema } from "effect"
import { Packr } from "msgpackr"
import { CodecError } from "./WeftError.js"

/**
 * Most arrays and maps `decode` accepts nested inside one another (a top-level array holding an array is
 * 2). Deeper input is Malformed, so hostile nesting never becomes a deep recursion in msgpackr.
 */
export const nestingDepthMax = 64

/** Longest `detail` a Schema mismatch carries; the parse message can quote the (untrusted) input. */
export const schemaDetailCharsMax = 1000

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "bigint",
  // A decoded Uint8Array must not alias the frame it came from: transports reuse their buffers.
  copyBuffers: true
})

/** Encodes any msgpack-encodable value (records off, bigint as 64-bit integer, Uint8Array as bin); throws for values msgpack cannot hold (a bigint beyond 64 bits, a symbol). */
export const encode = (value: unknown): Uint8Array => packr.pack(value)

const malformed = (detail: string) => new CodecError({ reason: "Malformed", detail })

/** The extension types let through to msgpackr: both are plain values with no state or code behind them. */
const extensionAllowed = (type: number, length: number): boolean =>
  (type === 0x00 && length === 1) || // undefined, as msgpackr encodes it
  (type === 0xff && (length === 4 || length === 8 || length === 12)) // timestamp -> Date

const enum Kind {
  Invalid,
  Scalar, // fixed size: `header` is the whole item
  Sized, // str, bin: `length` payload bytes follow the header
  Extension, // ext: as Sized, with the type in the header's last byte
  Array, // `length` items follow
  Map // `length` keys and values follow
}

const scalar1 = [Kind.Scalar, 1] as const
const fixMap = [Kind.Map, 1] as const
const fixArray = [Kind.Array, 1] as const
const fixStr = [Kind.Sized, 1] as const
/** Tokens 0xc0 through 0xdf, in order. */
const tokens: ReadonlyArray<readonly [Kind, number]> = [
  scalar1, [Kind.Invalid, 1], scalar1, scalar1, // nil, never used, false, true
  [Kind.Sized, 2], [Kind.Sized, 3], [Kind.Sized, 5], // bin 8/16/32
  [Kind.Extension, 3], [Kind.Extension, 4], [Kind.Extension, 6], // ext 8/16/32
  [Kind.Scalar, 5], [Kind.Scalar, 9], // float 32/64
  [Kind.Scalar, 2], [Kind.Scalar, 3], [Kind.Scalar, 5], [Kind.Scalar, 9], // uint 8/16/32/64
  [Kind.Scalar, 2], [Kind.Scalar, 3], [Kind.Scalar, 5], [Kind.Scalar, 9], // int 8/16/32/64
  [Kind.Extension, 2], [Kind.Extension, 2], [Kind.Extension, 2], [Kind.Extension, 2], [Kind.Extension, 2], // fixext 1..16
  [Kind.Sized, 2], [Kind.Sized, 3], [Kind.Sized, 5], // str 8/16/32
  [Kind.Array, 3], [Kind.Array, 5], // array 16/32
  [Kind.Map, 3], [Kind.Map, 5] // map 16/32
]

/** Kind and header size of the item starting with `token`, before any length field is read. */
const classify = (token: number): readonly [Kind, number] => {
  if (token <= 0x7f || token >= 0xe0) return scalar1
  if (token <= 0x8f) return fixMap
  if (token <= 0x9f) return fixArray
  if (token <= 0xbf) return fixStr
  return tokens[token - 0xc0]!
}

/** The length field of an item whose header (of `header` bytes, known to be in bounds) starts at `at`. */
const lengthField = (bytes: Uint8Array, view: DataView, at: number, token: number, header: number): number => {
  if (token < 0xc0) return token < 0xa0 ? token & 0x0f : token & 0x1f
  if (token >= 0xd4 && token <= 0xd8) return 1 << (token - 0xd4)
  // The length field follows the type byte and is 1, 2 or 4 bytes (ext headers carry a type byte after it).
  const fieldBytes = token >= 0xc7 && token <= 0xc9 ? header - 2 : header - 1
  return fieldBytes === 1 ? bytes[at + 1]! : fieldBytes === 2 ? view.getUint16(at + 1) : view.getUint32(at + 1)
}

const isStringToken = (token: number): boolean => (token >= 0xa0 && token <= 0xbf) || (token >= 0xd9 && token <= 0xdb)

/**
 * Checks that `bytes` hold exactly one well-formed msgpack value msgpackr may decode safely: every length
 * fits in what is left, nesting stays within `nestingDepthMax`, map keys are strings, only harmless
 * extensions appear, and nothing trails. Iterative, so hostile nesting cannot exhaust the stack, and it
 * allocates nothing but its depth stack. Returns a description of the first problem, or undefined.
 */
export const scan = (bytes: Uint8Array): string | undefined => {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  // remaining[d]: items still to read in the container at depth d (a map counts keys and values).
  const remaining: Array<number> = [1]
  const inMap: Array<boolean> = [false]
  let at = 0
  while (remaining.length > 0) {
    const depth = remaining.length - 1
    const left = remaining[depth]!
    if (left === 0) {
      remaining.pop()
      inMap.pop()
      continue
    }
    remaining[depth] = left - 1
    if (at >= bytes.length) return "truncated"
    const token = bytes[at]!
    if (inMap[depth] === true && left % 2 === 0 && !isStringToken(token)) return `map key at byte ${at} is not a string`
    const [kind, header] = classify(token)
    if (kind === Kind.Invalid) return `invalid token 0x${token.toString(16)} at byte ${at}`
    if (header > bytes.length - at) return "truncated"
    if (kind === Kind.Scalar) {
      at += header
      continue
    }
    const length = lengthField(bytes, view, at, token, header)
    const rest = bytes.length - at - header
    if (kind === Kind.Array || kind === Kind.Map) {
      const items = kind === Kind.Map ? length * 2 : length
      // Every item takes at least one byte: a count beyond what is left is a lie, refused before any allocation.
      if (items > rest) return `container at byte ${at} claims ${length} entries`
      if (depth + 1 > nestingDepthMax) return `nesting deeper than ${nestingDepthMax}`
      remaining.push(items)
      inMap.push(kind === Kind.Map)
      at += header
      continue
    }
    if (length > rest) return `item at byte ${at} overruns the input`
    if (kind === Kind.Extension && !extensionAllowed(bytes[at + header - 1]!, length)) {
      return `extension type ${bytes[at + header - 1]} at byte ${at} is not accepted`
    }
    at += header + length
  }
  return at === bytes.length ? undefined : `${bytes.length - at} trailing bytes`
}

/** Decodes untrusted bytes: TooLarge past `maxBytes` (checked first), Malformed for anything not one well-formed value. Never throws. */
export const decode = (bytes: Uint8Array, maxBytes: number): Either.Either<unknown, CodecError> => {
  if (bytes.length > maxBytes) {
    return Either.left(new CodecError({ reason: "TooLarge", detail: `${bytes.length} bytes, at most ${maxBytes}` }))
  }
  const problem = scan(bytes)
  if (problem !== undefined) return Either.left(malformed(problem))
  try {
    return Either.right(packr.unpack(bytes))
  } catch (cause) {
    return Either.left(malformed(cause instanceof Error ? cause.message : String(cause)))
  }
}

/** A Schema mismatch as a CodecError, with the parse message (capped) as detail. */
export const schemaError = (error: ParseResult.ParseError): CodecError =>
  new CodecError({ reason: "Schema", detail: error.message.slice(0, schemaDetailCharsMax) })

/** `decode`, then a Schema; a mismatch is CodecError("Schema") with the parse message as detail. */
export const decodeWith =
  <A, I>(schema: Schema.Schema<A, I>, maxBytes: number) => {
    const decodeSchema = Schema.decodeUnknownEither(schema)
    return (bytes: Uint8Array): Either.Either<A, CodecError> =>
      Either.flatMap(decode(bytes, maxBytes), (value) => Either.mapLeft(decodeSchema(value), schemaError))
  }
