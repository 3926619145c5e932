import { assert, describe, it } from "@effect/vitest"
import { Console, Effect } from "effect"
import * as DevReport from "../src/DevReport.js"
import { Control } from "../src/internal/core.js"
import * as Weft from "./weft.js"

const status = (id: string, peers: number, sent: number) =>
  new Control.Status({
    id,
    pid: 4242,
    control: `/tmp/d/${id}/control.sock`,
    transports: [{ kind: "udp", address: "udp:127.0.0.1:7100" }],
    peers: Array.from({ length: peers }, (_, i) => ({ id: `peer${i}`, address: "udp:127.0.0.1:7101", initiator: true })),
    uptimeMs: 1000,
    messages: { sent, received: 0, malformed: 0, dropped: 0 },
    services: [],
    gossip: { strategy: "weft", peers: 0, topics: [] }
  })

// Runs a report call and returns what it printed on stdout.
const printed = (effect: Effect.Effect<void>) =>
  Console.consoleWith((console) => {
    const out: Array<string> = []
    return effect.pipe(Effect.withConsole(Weft.capture(console, out, [])), Effect.map(() => out.join("")))
  })

const exited: DevReport.Exited = { index: 2, id: "c", pid: 1234, code: 1, signal: null }

describe("DevReport", () => {
  it.effect("text: a node that is gone shows as - in the status line, and its exit is one line", () =>
    Effect.gen(function*() {
      const tick = yield* printed(DevReport.human.tick([
        { status: status("a", 1, 10), messagesPerSecond: 2 },
        undefined,
        { status: status("b", 1, 10), messagesPerSecond: 1.5 }
      ], 12.4))
      assert.strictEqual(tick, "[   12s] peers 1/-/1  messages/s 3.5\n")
      assert.strictEqual(yield* printed(DevReport.human.exited(exited, 3)), "weft dev: node 2 (pid 1234) exited with code 1; the other nodes keep running\n")
      assert.strictEqual(
        yield* printed(DevReport.human.exited({ ...exited, code: null, signal: "SIGKILL" }, 3)),
        "weft dev: node 2 (pid 1234) was killed by SIGKILL; the other nodes keep running\n"
      )
    }))

  it.effect("JSON: status lines only for the nodes that answered, and an exited event", () =>
    Effect.gen(function*() {
      const tick = yield* printed(DevReport.json.tick([undefined, { status: status("b", 0, 3), messagesPerSecond: 1 }], 2))
      const lines = tick.trim().split("\n").map((line) => JSON.parse(line))
      assert.lengthOf(lines, 1)
      assert.deepInclude(lines[0], { event: "status", id: "b", pid: 4242, transports: [{ kind: "udp", address: "udp:127.0.0.1:7100" }] })
      assert.deepStrictEqual(
        JSON.parse(yield* printed(DevReport.json.exited({ ...exited, code: null, signal: "SIGKILL" }, 7.1234))),
        { event: "exited", t: 7.123, index: 2, id: "c", pid: 1234, code: null, signal: "SIGKILL" }
      )
    }))
})
