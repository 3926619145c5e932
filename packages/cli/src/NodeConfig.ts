/**
 * The node config file `weft node run` reads (`--config FILE`, else `<data>/node.json` if it exists):
 *
 * ```json
 * { "transports": [{ "kind": "udp", "host": "127.0.0.1", "port": 0 }],
 *   "limits": { "peersMax": 64, "callTimeout": "5 seconds" },
 *   "connect": ["udp:127.0.0.1:7101"] }
 * ```
 *
 * Every field is optional; unknown fields are errors, so a misspelt limit is not silently ignored.
 * `resolve` merges the file with the command line (`--listen` replaces `transports`, `--connect` adds
 * to `connect`) into what the node is built from. Every failure is one line naming the field.
 */
import { TransportUdp } from "@weft/transport-udp"
import { Duration, Effect, Either, ParseResult, Schema } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as DurationText from "./DurationText.js"
import { Limits } from "./internal/core.js"

/** The file name of the default config inside a data directory. */
export const fileName = "node.json"

/** The default endpoint: UDP on the loopback interface, on a port the kernel picks. */
export const defaultTransport: Endpoint = { kind: "udp", host: "127.0.0.1", port: 0 }

const ipMessage = (issue: { readonly actual: unknown }) => `must be an IP literal (e.g. 127.0.0.1 or ::1), got ${JSON.stringify(issue.actual)}`

const IpLiteral = Schema.String.annotations({ message: ipMessage }).pipe(Schema.filter((host) => Net.isIP(host) !== 0, { message: ipMessage }))

// A message for the base type as well as the refinement, so that `"port": "x"` reads like `"port": -1`.
const checkedNumber = (valid: (n: number) => boolean, expected: string) => {
  const message = (issue: { readonly actual: unknown }) => `must be ${expected}, got ${JSON.stringify(issue.actual)}`
  return Schema.Number.annotations({ message }).pipe(Schema.filter(valid, { message }))
}

const Port = checkedNumber((port) => Number.isInteger(port) && port >= 0 && port <= 65_535, "an integer in 0..65535 (0: any free port)")

/** One UDP endpoint to listen on. */
export const UdpTransport = Schema.Struct({
  kind: Schema.Literal("udp").annotations({ message: (issue) => `must be "udp" (the only transport so far), got ${JSON.stringify(issue.actual)}` }),
  host: Schema.optionalWith(IpLiteral, { exact: true }),
  port: Schema.optionalWith(Port, { exact: true })
}).annotations({ message: () => "must be an object like {\"kind\": \"udp\", \"host\": \"127.0.0.1\", \"port\": 0}" })

const oneTransportHint = "list one, e.g. {\"kind\": \"udp\", \"host\": \"127.0.0.1\", \"port\": 0}"

/** The UDP endpoint a node listens on, with the defaults filled in. */
export interface Endpoint {
  readonly kind: "udp"
  readonly host: string
  readonly port: number
}

const addressMessage = (issue: { readonly actual: unknown }) => `must be a udp address like udp:127.0.0.1:7100, got ${JSON.stringify(issue.actual)}`

/** A peer address to connect to: `udp:<ip>:<port>` or `udp:[<ipv6>]:<port>`. */
export const PeerAddress = Schema.String.annotations({ message: addressMessage }).pipe(
  Schema.filter((address) => TransportUdp.parse(address) !== undefined, { message: addressMessage })
)

const LimitCount = checkedNumber((n) => Number.isSafeInteger(n) && n >= 0, "a non-negative integer")

const durationMessage = (actual: unknown) => `must be a duration such as "5 seconds" or "500ms", got ${JSON.stringify(actual)}`

const LimitDuration = Schema.transformOrFail(Schema.String.annotations({ message: (issue) => durationMessage(issue.actual) }), Schema.DurationFromSelf, {
  strict: true,
  decode: (text, _, ast) =>
    Either.match(DurationText.parse(text), {
      onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, text, message)),
      onRight: ParseResult.succeed
    }),
  encode: (duration) => ParseResult.succeed(Duration.format(duration))
}).annotations({ message: (issue) => durationMessage(issue.actual) })

// One optional field per limit, typed by its default: durations are written as text, the rest as numbers.
const limitFields = Object.fromEntries(
  Object.entries(Limits.defaults).map(([name, value]) => [name, Schema.optionalWith(Duration.isDuration(value) ? LimitDuration : LimitCount, { exact: true })])
)

/**
 * Overrides of the node's limits (see `docs/LIMITS.md` for the names). The struct is built from the
 * defaults' keys, so its static type is asserted here: one field per limit, with the limit's type.
 */
export const LimitOverrides = Schema.Struct(limitFields).annotations({
  message: () => "must be an object of limit overrides, e.g. {\"peersMax\": 64, \"callTimeout\": \"5 seconds\"}"
}) as unknown as Schema.Schema<Partial<Limits.Values>, Record<string, unknown>>

/**
 * Runs the ledger on the node: `genesis` is the genesis file (JSON), `authorityKey` the authority
 * account key file if this node produces blocks, `data` the lmdb directory of the chain and the
 * content store (default `<data dir>/ledger`), `autoClaim` whether an authority claims its block
 * rewards on its own (default true; `false`: they wait for `weft token mint all`). Relative paths are
 * relative to the node's data directory.
 */
export const LedgerSection = Schema.Struct({
  genesis: Schema.String,
  authorityKey: Schema.optionalWith(Schema.String, { exact: true }),
  data: Schema.optionalWith(Schema.String, { exact: true }),
  autoClaim: Schema.optionalWith(Schema.Boolean, { exact: true })
}).annotations({ message: () => "must be an object like {\"genesis\": \"genesis.json\", \"authorityKey\": \"authority.json\"}" })

/** The ledger section, paths resolved. */
export interface Ledger {
  readonly genesis: string
  readonly authorityKey?: string
  readonly data: string
  /** Absent: true. */
  readonly autoClaim?: boolean
}

/**
 * The ephemeral-message service (`@weft/ephemeral`) of a ledger node: on by default whenever the node
 * runs the ledger (it needs the chain); `false` turns it off. `relay` forwards valid messages, `store`
 * keeps them until their TTL for lookups, `ttlMax` (text, e.g. "1 day") and `blockDepth` bound what
 * the node accepts.
 */
export const EphemeralSection = Schema.Union(
  Schema.Literal(false),
  Schema.Struct({
    relay: Schema.optionalWith(Schema.Boolean, { exact: true }),
    store: Schema.optionalWith(Schema.Boolean, { exact: true }),
    ttlMax: Schema.optionalWith(LimitDuration, { exact: true }),
    blockDepth: Schema.optionalWith(Schema.Int.pipe(Schema.positive()), { exact: true })
  })
).annotations({ message: () => "must be false or an object like {\"relay\": true, \"store\": true, \"ttlMax\": \"1 day\", \"blockDepth\": 64}" })

/** The ephemeral section, as the node runs it. */
export interface Ephemeral {
  readonly relay?: boolean
  readonly store?: boolean
  readonly ttlMax?: Duration.Duration
  readonly blockDepth?: number
}

/** The node config file. */
export const NodeConfig = Schema.Struct({
  transports: Schema.optional(
    Schema.Array(UdpTransport).annotations({ message: () => "must be a list of transports" }).pipe(
      Schema.filter((transports) => transports.length === 1, {
        message: (issue) => `${(issue.actual as ReadonlyArray<unknown>).length} transports given, but a node supports one transport today (${oneTransportHint})`
      })
    )
  ),
  limits: Schema.optional(LimitOverrides),
  connect: Schema.optional(Schema.Array(PeerAddress).annotations({ message: () => "must be a list of udp addresses" })),
  ledger: Schema.optional(LedgerSection),
  ephemeral: Schema.optional(EphemeralSection)
}).annotations({ message: () => "must be a JSON object with optional transports, limits, connect, ledger and ephemeral" })

/** The node config file, decoded. */
export type NodeConfig = typeof NodeConfig.Type

/** What a node is built from once the file and the command line are merged. */
export interface Resolved {
  readonly transport: Endpoint
  readonly limits: Partial<Limits.Values>
  readonly connect: ReadonlyArray<string>
  /** Present when the node runs the ledger. */
  readonly ledger?: Ledger
  /** Present when the node runs the ephemeral-message service (a ledger node, unless its config says `false`). */
  readonly ephemeral?: Ephemeral
}

const fail = (message: string) => Effect.fail(new CliError({ message }))

const unexpected = (path: ReadonlyArray<PropertyKey>): string =>
  path[0] === "limits" ? "is not a limit (docs/LIMITS.md lists them)" : "is not a known field"

// The first problem, as `field.path: what is wrong`.
const firstIssue = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return error.message
  const message = issue._tag === "Unexpected" ? unexpected(issue.path) : issue.message.split("\n")[0]!
  return issue.path.length === 0 ? message : `${issue.path.join(".")}: ${message}`
}

/** Decodes a config from parsed JSON; `source` names it in errors. */
export const decode = (source: string, json: unknown): Effect.Effect<NodeConfig, CliError> =>
  Schema.decodeUnknown(NodeConfig, { onExcessProperty: "error" })(json).pipe(
    Effect.mapError((error) => new CliError({ message: `${source}: ${firstIssue(error)}` }))
  )

const readText = (file: string): Effect.Effect<string, CliError> =>
  Effect.try({
    try: () => Fs.readFileSync(file, "utf8"),
    catch: (cause) => new CliError({ message: `cannot read the node config ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

const parseJson = (file: string, text: string): Effect.Effect<unknown, CliError> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new CliError({ message: `${file} is not JSON: ${cause instanceof Error ? cause.message : String(cause)}` })
  })

/** Reads `file`; without one, `<dataDir>/node.json` if it exists, else an empty config. */
export const load = (dataDir: string, file: string | undefined): Effect.Effect<NodeConfig, CliError> => {
  const path = file ?? Path.join(dataDir, fileName)
  if (file === undefined && !Fs.existsSync(path)) return Effect.succeed({})
  return readText(path).pipe(
    Effect.flatMap((text) => parseJson(path, text)),
    Effect.flatMap((json) => decode(path, json))
  )
}

/** Parses a `--listen` address: a udp address whose port may be 0 (any free port). */
export const parseListen = (address: string): Either.Either<Endpoint, string> => {
  const anyPort = address.endsWith(":0")
  const peer = TransportUdp.parse(anyPort ? `${address.slice(0, -1)}1` : address)
  return peer === undefined
    ? Either.left(`--listen: not a udp address: ${JSON.stringify(address)} (e.g. udp:127.0.0.1:7100, or port 0 for any free port)`)
    : Either.right({ kind: "udp", host: peer.host, port: anyPort ? 0 : peer.port })
}

const parseConnect = (address: string): Effect.Effect<string, CliError> =>
  TransportUdp.parse(address) === undefined
    ? fail(`--connect: not a udp address: ${JSON.stringify(address)} (e.g. udp:127.0.0.1:7100)`)
    : Effect.succeed(address)

const oneListen = (endpoints: ReadonlyArray<Endpoint>): Effect.Effect<Endpoint, CliError> =>
  endpoints.length === 1
    ? Effect.succeed(endpoints[0]!)
    : fail(`--listen: ${endpoints.length} addresses given, but a node supports one transport today (pass --listen once)`)

const ledgerPaths = (section: typeof LedgerSection.Type, dataDir: string): Ledger => ({
  genesis: Path.resolve(dataDir, section.genesis),
  data: Path.resolve(dataDir, section.data ?? "ledger"),
  ...(section.authorityKey === undefined ? {} : { authorityKey: Path.resolve(dataDir, section.authorityKey) }),
  ...(section.autoClaim === undefined ? {} : { autoClaim: section.autoClaim })
})

/** Merges the config with `--listen` (replaces its transports) and `--connect` (added to its list). */
export const resolve = (
  config: NodeConfig,
  options: { readonly listen: ReadonlyArray<string>; readonly connect: ReadonlyArray<string>; readonly dataDir?: string }
): Effect.Effect<Resolved, CliError> =>
  Effect.gen(function*() {
    const listened = yield* Effect.forEach(options.listen, (address) =>
      Either.match(parseListen(address), { onLeft: fail, onRight: Effect.succeed }))
    const transport = options.listen.length > 0
      ? yield* oneListen(listened)
      : { ...defaultTransport, ...config.transports?.[0] }
    const extra = yield* Effect.forEach(options.connect, parseConnect)
    const connect = [...new Set([...(config.connect ?? []), ...extra])]
    if (config.ledger === undefined && config.ephemeral !== undefined && config.ephemeral !== false) {
      return yield* fail("ephemeral: the ephemeral-message service reads the chain, so it needs a ledger section")
    }
    const ledger = config.ledger === undefined ? {} : { ledger: ledgerPaths(config.ledger, options.dataDir ?? ".") }
    const ephemeral = config.ledger === undefined || config.ephemeral === false ? {} : { ephemeral: config.ephemeral ?? {} }
    return { transport, limits: config.limits ?? {}, connect, ...ledger, ...ephemeral }
  })
