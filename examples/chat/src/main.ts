/**
 * Chat between two accounts over the running `weft dev` network (start one with
 * `npm start -- --nodes 2`), then: npm run -w examples/chat start
 * Alice is the dev account on the first node; bob is a new account (`<dev data>/chat-bob.json`) on the
 * second node (the first, if the network has one node).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { chat } from "./chat.js"

const devNetwork = Effect.try({
  try: () => JSON.parse(Fs.readFileSync(Path.join(Os.tmpdir(), "weft-dev.json"), "utf8")) as { readonly node: string; readonly key: string },
  catch: () => new Error("no running `weft dev` found: start one with `npm start -- --nodes 2`")
})

Effect.gen(function*() {
  const dev = yield* devNetwork
  const data = Path.dirname(dev.key)
  const second = Path.join(data, "node-1")
  yield* chat({
    aliceNode: dev.node,
    aliceKey: dev.key,
    bobNode: Fs.existsSync(Path.join(second, "control.sock")) ? second : dev.node,
    bobKey: Path.join(data, "chat-bob.json")
  })
}).pipe(NodeRuntime.runMain)
