/**
 * `weft pub` and `weft sub`: gossip from the command line, through a running node's control socket.
 * `pub` publishes one UTF-8 message on a topic and prints its content id; `sub` prints every message on
 * a topic as it arrives (text, or one JSON object per line), until Ctrl-C or `--count` messages.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option, Stream } from "effect"
import { Control } from "./internal/core.js"
import * as Json from "./Json.js"
import * as NodeTarget from "./NodeTarget.js"

const topic = Args.text({ name: "topic" }).pipe(Args.withDescription("The topic (1 to 256 characters)."))
const message = Args.text({ name: "message" }).pipe(Args.withDescription("The message, sent as UTF-8."))
const json = Options.boolean("json").pipe(Options.withDescription("Print JSON (one object per line)."))
const count = Options.integer("count").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("Exit after N messages."),
  Options.optional
)

const decoder = new TextDecoder("utf-8", { fatal: false })

/** The `pub` command. */
export const pub = Command.make("pub", { node: NodeTarget.option, topic, message, json }, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* Control.client(args.node)
      const id = yield* client.Publish({ topic: args.topic, data: new TextEncoder().encode(args.message) })
      yield* Console.log(args.json ? Json.line({ topic: args.topic, id }) : `published ${id} on ${args.topic}`)
    })
  )).pipe(Command.withDescription("Publish <message> on <topic> through a running node's gossip; prints the message's content id."))

/** The `sub` command. */
export const sub = Command.make("sub", { node: NodeTarget.option, topic, json, count }, (args) =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* Control.client(args.node)
      const messages = client.Subscribe({ topic: args.topic })
      const limited = Option.match(args.count, { onNone: () => messages, onSome: (n) => Stream.take(messages, n) })
      yield* Stream.runForEach(limited, (m) =>
        Console.log(
          args.json
            ? Json.line({ topic: m.topic, id: m.id, from: m.from, text: decoder.decode(m.data) })
            : `${m.topic} ${m.id.slice(0, 12)} from ${m.from.slice(0, 12)}: ${decoder.decode(m.data)}`
        ))
    })
  )).pipe(Command.withDescription("Print every message on <topic> as a running node receives it (Ctrl-C stops; --count N stops after N)."))
