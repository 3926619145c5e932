/**
 * `weft node call`: the generic RPC caller. It asks a running node, over its control socket, to call
 * `<service>.<method>` with a JSON payload on itself or on a peer, and prints the result as JSON. The
 * node answers with the call's encoded Exit; a failure becomes one line on stderr and a non-zero exit.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Either, Option } from "effect"
import { CliError, describe } from "./CliError.js"
import { Control, NodeId } from "./internal/core.js"
import * as Json from "./Json.js"
import * as NodeTarget from "./NodeTarget.js"

const peer = Options.text("peer").pipe(
  Options.withAlias("p"),
  Options.withPseudoName("NODE_ID"),
  Options.withDescription("Call the service on this peer (a node ID) instead of on the node itself."),
  Options.optional
)

const service = Args.text({ name: "service" }).pipe(Args.withDescription("The RPC group's name, as `weft node status` lists it."))
const method = Args.text({ name: "method" }).pipe(Args.withDescription("The RPC's tag."))
const payload = Args.text({ name: "json-payload" }).pipe(Args.withDescription("The payload as JSON, e.g. '{\"from\":\"me\"}'."))

const parsePayload = (text: string): Effect.Effect<unknown, CliError> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) => new CliError({ message: `the payload is not JSON (${cause instanceof Error ? cause.message : String(cause)}); quote it, e.g. '{"from":"me"}'` })
  })

const parsePeer = (text: Option.Option<string>): Effect.Effect<string | undefined, CliError> =>
  Option.match(text, {
    onNone: () => Effect.succeed(undefined),
    onSome: (id) =>
      Either.match(NodeId.parse(id), {
        onLeft: () => Effect.fail(new CliError({ message: `--peer is not a node ID: ${JSON.stringify(id)} (52 base32 characters, as \`weft node status\` prints them)` })),
        onRight: Effect.succeed
      })
  })

type Encoded = { readonly _tag?: unknown; readonly [key: string]: unknown }

// The first failure in an encoded Cause: a typed error (Fail) or a defect (Die), else an interruption.
const causeFailure = (cause: Encoded | undefined): unknown => {
  switch (cause?._tag) {
    case "Fail":
      return cause["error"]
    case "Die":
      return cause["defect"]
    case "Sequential":
    case "Parallel":
      return causeFailure(cause["left"] as Encoded) ?? causeFailure(cause["right"] as Encoded)
    case "Interrupt":
      return "the call was interrupted"
    default:
      return undefined
  }
}

const errorText = (error: unknown): string => (typeof error === "string" ? error : Json.line(error))

/** The first typed error (or defect) of an encoded failed Exit; undefined for a success. */
export const failureOf = (exit: unknown): unknown => {
  const encoded = exit as Encoded | null
  if (encoded?._tag !== "Failure") return undefined
  return causeFailure(encoded["cause"] as Encoded) ?? "the call was interrupted"
}

/** The success value of an encoded Exit, or a CliError naming the failure. */
export const successOf = (label: string, exit: unknown): Effect.Effect<unknown, CliError> => {
  const encoded = exit as Encoded | null
  if (encoded?._tag === "Success") return Effect.succeed(encoded["value"])
  if (encoded?._tag === "Failure") {
    const error = causeFailure(encoded["cause"] as Encoded) ?? "unknown failure"
    return Effect.fail(new CliError({ message: `${label} failed: ${errorText(error)}` }))
  }
  return Effect.fail(new CliError({ message: `${label}: the node answered with something that is not an encoded Exit: ${Json.line(exit)}` }))
}

/** The `call` subcommand. */
export const command = Command.make(
  "call",
  { node: NodeTarget.option, peer, service, method, payload },
  (args) =>
    Effect.scoped(
      Effect.gen(function*() {
        const body = yield* parsePayload(args.payload)
        const peerId = yield* parsePeer(args.peer)
        const client = yield* Control.client(args.node)
        const exit = yield* client.Call({ service: args.service, method: args.method, payload: body, peer: peerId }).pipe(
          Effect.catchTag("NodeError", (error) =>
            Effect.fail(
              error.reason === "UnknownService" || error.reason === "UnknownMethod"
                ? new CliError({ message: `${describe(error)} (\`weft node status --node ${args.node}\` lists its services)` })
                : error
            ))
        )
        const value = yield* successOf(`${args.service}.${args.method}`, exit)
        yield* Console.log(Json.line(value))
      })
    )
).pipe(Command.withDescription("Call <service> <method> with a JSON payload on a running node (or, with --peer, on one of its peers); prints the result as JSON."))
