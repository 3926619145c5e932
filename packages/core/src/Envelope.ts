/**
 * The envelope: the unit the message layer puts in one link frame.
 *
 * On the wire an envelope is a msgpack ARRAY of exactly eight items (no map keys, no records):
 *
 * ```
 * [version, kind, stream, seq, tag, corr, to, body]
 *   version  1
 *   kind     0..11, see `Kind`
 *   stream   u32; 0 is the default stream, a channel opened by the sender uses an even id > 0 and the
 *            answering side uses that id + 1 (so both nodes allocate ids without colliding)
 *   seq      per sender, per peer, per stream: 0, 1, 2, … (non-negative safe integer)
 *   tag      string of at most `tagCharsMax` ("" when the kind has no tag)
 *   corr     correlation id (non-negative safe integer) or nil; required by calls, asks and their replies
 *   to       actor path (1..actorPathCharsMax chars, no leading "/") or nil; required by tell and ask
 *   body     any msgpack value, nil when the kind has none
 * ```
 *
 * Untrusted frames are decoded once, at the edge, by `decoder(limits)`: size first, then msgpack
 * structure (`Codec`), then the checks of `schema(limits)`. Anything else is a `CodecError`, never a throw.
 * `schema` is the definition; `fromWire` is its hand-written twin on the hot path (a Schema decode of
 * the tuple cost more than msgpack itself), and a property test holds the two to the same verdicts.
 */
import { Either, Schema } from "effect"
import * as Codec from "./Codec.js"
import type { Values } from "./Limits.js"
import { CodecError } from "./WeftError.js"

/** The envelope format version this code reads and writes. */
export const version = 1

/** What an envelope is for. Numbers are the wire values. */
export const Kind = {
  /** A message of a tag, no reply expected. */
  message: 0,
  /** A call expecting one reply (`reply` or `error`), correlated by `corr`. */
  call: 1,
  /** A call expecting a stream of replies (`reply-next`… then `reply-end`, or `error`). */
  callStream: 2,
  /** The one reply to a call. */
  reply: 3,
  /** One reply of a streaming call. */
  replyNext: 4,
  /** The end of a streaming call's replies. */
  replyEnd: 5,
  /** A call or ask failed; the body is `[reason, detail]` of a MessageError. */
  error: 6,
  /** Opens a channel for `tag` on `stream`. */
  channelOpen: 7,
  /** One body on an open channel. */
  channelData: 8,
  /** Closes a channel; the body is nil, or `[reason, detail]` when the channel was refused. */
  channelClose: 9,
  /** A message to the actor at `to`. */
  tell: 10,
  /** A call to the actor at `to`, correlated by `corr`. */
  ask: 11
} as const

/** A kind's wire value. */
export type Kind = (typeof Kind)[keyof typeof Kind]

/** One envelope, decoded. */
export interface Envelope {
  readonly kind: Kind
  readonly stream: number
  readonly seq: number
  readonly tag: string
  readonly corr: number | undefined
  readonly to: string | undefined
  readonly body: unknown
}

/** The bounds an envelope is checked against. */
export type EnvelopeLimits = Pick<Values, "tagCharsMax" | "actorPathCharsMax">

const u32Max = 0xffff_ffff

const kindsWithCorr: ReadonlySet<number> = new Set<number>([
  Kind.call, Kind.callStream, Kind.reply, Kind.replyNext, Kind.replyEnd, Kind.error, Kind.ask
])
const kindsWithTo: ReadonlySet<number> = new Set<number>([Kind.tell, Kind.ask])

/** Whether an envelope's optional fields are present exactly when its kind needs them. */
const fieldsFitKind = (kind: number, corr: number | null, to: string | null): boolean =>
  kindsWithCorr.has(kind) === (corr !== null) && kindsWithTo.has(kind) === (to !== null)

/** The schema of the wire array for the given bounds; its type side is `Envelope`. */
export const schema = (limits: EnvelopeLimits) => {
  const safeIndex = Schema.Number.pipe(Schema.int(), Schema.between(0, Number.MAX_SAFE_INTEGER))
  const wire = Schema.Tuple(
    Schema.Literal(version),
    Schema.Literal(...Object.values(Kind)),
    Schema.Number.pipe(Schema.int(), Schema.between(0, u32Max)),
    safeIndex,
    Schema.String.pipe(Schema.maxLength(limits.tagCharsMax)),
    Schema.NullOr(safeIndex),
    Schema.NullOr(Schema.String.pipe(
      Schema.minLength(1),
      Schema.maxLength(limits.actorPathCharsMax),
      Schema.filter((path) => !path.startsWith("/") || "actor path must not start with /")
    )),
    Schema.Unknown
  ).pipe(Schema.filter(([, kind, , , , corr, to]) => fieldsFitKind(kind, corr, to) || `fields do not fit kind ${kind}`))
  return Schema.transform(wire, Schema.Any as Schema.Schema<Envelope>, {
    strict: true,
    decode: ([, kind, stream, seq, tag, corr, to, body]): Envelope => ({
      kind, stream, seq, tag, corr: corr ?? undefined, to: to ?? undefined, body
    }),
    encode: (envelope) =>
      [version, envelope.kind, envelope.stream, envelope.seq, envelope.tag, envelope.corr ?? null, envelope.to ?? null, envelope.body] as const
  })
}

const isIndex = (value: unknown, max: number): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= max

const schemaFailure = (detail: string): Either.Either<never, CodecError> =>
  Either.left(new CodecError({ reason: "Schema", detail }))

/** The first rule of `schema` that `wire` (a decoded 8-item array) breaks, or undefined. */
const problemOf = (limits: EnvelopeLimits, wire: ReadonlyArray<unknown>): string | undefined => {
  const kind = wire[1], stream = wire[2], seq = wire[3], tag = wire[4], corr = wire[5], to = wire[6]
  if (wire[0] !== version) return `version must be ${version}`
  if (!isIndex(kind, Kind.ask)) return "unknown kind"
  if (!isIndex(stream, u32Max)) return "stream must be an integer in 0..2^32-1"
  if (!isIndex(seq, Number.MAX_SAFE_INTEGER)) return "seq must be a non-negative safe integer"
  if (typeof tag !== "string" || tag.length > limits.tagCharsMax) return `tag must be a string of at most ${limits.tagCharsMax} characters`
  if (corr !== null && !isIndex(corr, Number.MAX_SAFE_INTEGER)) return "corr must be nil or a non-negative safe integer"
  if (to !== null && (typeof to !== "string" || to.length < 1 || to.length > limits.actorPathCharsMax || to.startsWith("/"))) {
    return `to must be nil or an actor path of 1..${limits.actorPathCharsMax} characters not starting with /`
  }
  return fieldsFitKind(kind, corr, to) ? undefined : `fields do not fit kind ${kind}`
}

/**
 * Checks a decoded msgpack value against `schema(limits)` without running the Schema: the same
 * verdicts and the same decoded envelope, a `CodecError("Schema")` for a mismatch (with a shorter detail).
 */
export const fromWire = (limits: EnvelopeLimits) => (value: unknown): Either.Either<Envelope, CodecError> => {
  if (!Array.isArray(value) || value.length !== 8) return schemaFailure("an envelope is an array of 8 items")
  const problem = problemOf(limits, value)
  if (problem !== undefined) return schemaFailure(problem)
  return Either.right({
    kind: value[1], stream: value[2], seq: value[3], tag: value[4], corr: value[5] ?? undefined, to: value[6] ?? undefined, body: value[7]
  })
}

/**
 * The edge decoder: untrusted frame bytes to an envelope, or a CodecError (TooLarge past
 * `envelopeBytesMax`, Malformed, Schema). Never throws.
 */
export const decoder = (limits: EnvelopeLimits & Pick<Values, "envelopeBytesMax">): (bytes: Uint8Array) => Either.Either<Envelope, CodecError> => {
  const check = fromWire(limits)
  const maxBytes = limits.envelopeBytesMax
  return (bytes) => {
    const value = Codec.decode(bytes, maxBytes)
    return Either.isLeft(value) ? Either.left(value.left) : check(value.right)
  }
}

/**
 * Encodes an envelope to its wire array. Throws only for a body msgpack cannot hold (a symbol, a bigint
 * beyond 64 bits): callers turn that into a typed error.
 */
export const encode = (envelope: Envelope): Uint8Array =>
  Codec.encode([version, envelope.kind, envelope.stream, envelope.seq, envelope.tag, envelope.corr ?? null, envelope.to ?? null, envelope.body])
