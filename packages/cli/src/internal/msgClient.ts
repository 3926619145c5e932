/**
 * The `weft msg` side of the ephemeral RPCs: typed calls into a node's `Ephemeral` service through its
 * control socket (`Control.Call`, the answer decoded by the rpc's own schema), the node's live messages
 * (its gossip topic, through `Control.Subscribe`), and the node as the `ChainView` channels need.
 * Messages are built (proof of work) and channels sealed here: the node sees only finished messages.
 */
import { Chain, EphemeralError, EphemeralNode, Message } from "@weft/ephemeral"
import type { Scope } from "effect"
import { Effect, Either, Option, ParseResult, Schema, Stream } from "effect"
import { failureOf, successOf } from "../Call.js"
import { CliError, describe } from "../CliError.js"
import { Control } from "./core.js"

/** The service name of the ephemeral RPCs on a node. */
export const serviceName = "Ephemeral"

const LatticeKey = Schema.NullOr(Schema.Struct({ kemPublicKey: Schema.Uint8ArrayFromSelf, dsaPublicKey: Schema.Uint8ArrayFromSelf }))
const Sent = Schema.Struct({ id: Schema.String, workBits: Schema.Number, stored: Schema.String, relayed: Schema.Boolean })

/** What a submission did. */
export type Sent = typeof Sent.Type

/** A node's ephemeral service, as `weft msg` uses it. */
export interface Ephemeral {
  readonly info: Effect.Effect<EphemeralNode.Info, CliError>
  readonly send: (message: Uint8Array) => Effect.Effect<Sent, CliError>
  /** Stored live messages whose ID0 starts with `prefix` (decoded; undecodable ones left out). */
  readonly lookup: (prefix: Uint8Array) => Effect.Effect<ReadonlyArray<Message.Message>, CliError>
  readonly latticeKey: (account: Chain.AccountId) => Effect.Effect<Option.Option<Chain.LatticeKey>, CliError>
  /** Every message the node accepts from now on, for as long as the scope lives. */
  readonly live: Stream.Stream<Message.Message, CliError>
  /** The node as the chain channels read keys from. */
  readonly chainView: Chain.ChainView["Type"]
}

const describeFailure = (value: unknown): string =>
  Either.match(Schema.decodeUnknownEither(EphemeralError.EphemeralError)(value), {
    onLeft: () => (typeof value === "string" ? value : JSON.stringify(value)),
    onRight: (error) => error.detail ?? error.reason
  })

const decodeAll = (encoded: ReadonlyArray<Uint8Array>): ReadonlyArray<Message.Message> =>
  encoded.flatMap((bytes) => Either.match(Message.decode(bytes), { onLeft: () => [], onRight: (message) => [message] }))

/** Opens the control client of `target` and wraps it for ephemeral calls. */
export const ephemeral = (target: string): Effect.Effect<Ephemeral, CliError, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* Control.client(target).pipe(Effect.mapError((error) => new CliError({ message: error.detail ?? error.reason })))
    const call = <A, I>(method: string, payload: Record<string, unknown>, success: Schema.Schema<A, I>, refused = `${method} refused`) =>
      Effect.gen(function*() {
        const exit = yield* client.Call({ service: serviceName, method, payload }).pipe(
          Effect.mapError((error) => new CliError({ message: `${method}: ${"detail" in error && typeof error.detail === "string" ? error.detail : String(error)} (does this node run the ephemeral service? it needs a ledger)` }))
        )
        const failure = failureOf(exit)
        if (failure !== undefined) return yield* Effect.fail(new CliError({ message: `${refused}: ${describeFailure(failure)}` }))
        const value = yield* successOf(method, exit)
        return yield* Schema.decodeUnknown(success)(value).pipe(
          Effect.mapError((error) => new CliError({ message: `${method}: unexpected answer: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}` }))
        )
      })
    const latticeKey = (account: Chain.AccountId) =>
      Effect.map(call("EphemeralLatticeKey", { account }, LatticeKey), (found) => Option.fromNullable(found))
    const info = call("EphemeralInfo", {}, EphemeralNode.Info)
    const live = client.Subscribe({ topic: EphemeralNode.topic }).pipe(
      Stream.mapError((error) => new CliError({ message: `following the node's messages: ${describe(error)}` })),
      Stream.mapConcat((delivered) => decodeAll([delivered.data]))
    )
    return {
      info,
      send: (message) => call("EphemeralSend", { message }, Sent, "the node refused the message"),
      lookup: (prefix) => Effect.map(call("EphemeralLookup", { prefix }, Schema.Array(Schema.Uint8ArrayFromSelf)), decodeAll),
      latticeKey,
      live,
      chainView: EphemeralNode.chainViewFrom(info, latticeKey)
    } satisfies Ephemeral
  })
