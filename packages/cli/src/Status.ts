/**
 * `weft node status`: what a running node reports about itself over its control socket, as text for
 * people or as the `Control.Status` JSON object for scripts.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Schema } from "effect"
import { Control } from "./internal/core.js"
import * as Json from "./Json.js"
import * as NodeTarget from "./NodeTarget.js"

const json = Options.boolean("json").pipe(Options.withDescription("Print the status as one JSON object."))

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`

/** The status as lines of text. */
export const render = (status: Control.Status): string => {
  const lines = [
    `node        ${status.id}`,
    `pid         ${status.pid}`,
    `uptime      ${seconds(status.uptimeMs)}`,
    `control     ${status.control ?? "(none)"}`,
    `transports  ${status.transports.map((t) => `${t.kind} ${t.address}`).join(", ") || "(none)"}`,
    `messages    sent ${status.messages.sent}, received ${status.messages.received}, ` +
    `malformed ${status.messages.malformed}, dropped ${status.messages.dropped}`,
    `peers       ${status.peers.length}`,
    ...status.peers.map((peer) => `  ${peer.id}  ${peer.address}  ${peer.initiator ? "dialed" : "accepted"}`),
    `services    ${status.services.length}`,
    ...status.services.map((service) => `  ${service.name}: ${service.methods.join(", ")}`),
    `gossip      ${status.gossip.strategy}, peers ${status.gossip.peers}, topics ` +
    (status.gossip.topics.map((t) => `${t.topic} (${t.subscribers})`).join(", ") || "(none)")
  ]
  return lines.join("\n")
}

/** The `status` subcommand. */
export const command = Command.make("status", { node: NodeTarget.option, json }, ({ json, node }) =>
  Effect.scoped(
    Effect.gen(function*() {
      const client = yield* Control.client(node)
      const status = yield* client.Status()
      yield* Console.log(json ? Json.line(Schema.encodeSync(Control.Status)(status)) : render(status))
    })
  )
).pipe(Command.withDescription("Show a running node's ID, pid, uptime, transports, peers, message counters and services."))
