import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Control } from "../src/internal/core.js"
import * as Weft from "./weft.js"

interface Received {
  readonly topic: string
  readonly id: string
  readonly from: string
  readonly text: string
}

const nodes = 5
const subscribers = [1, 2, 3, 4]

/** The status of the node in `dir`, read over its control socket from this process (no CLI start-up cost). */
const statusOf = (dir: string) => Effect.scoped(Effect.flatMap(Control.client(dir), (client) => client.Status()))

/** Polls until `check` holds for every node's status (or gives up after about 30 s). */
const untilEvery = (dirs: ReadonlyArray<string>, check: (status: Control.Status) => boolean) =>
  Effect.gen(function*() {
    for (let round = 0; round < 150; round++) {
      const statuses = yield* Effect.forEach(dirs, (dir) => Effect.option(statusOf(dir)))
      if (statuses.every((s) => s._tag === "Some" && check(s.value))) return true
      yield* Effect.sleep("200 millis")
    }
    return false
  })

describe("weft pub / weft sub", () => {
  it.scopedLive("over `weft dev --nodes 5` (UDP, one process per node), a published message reaches every subscriber", () =>
    Effect.gen(function*() {
      const data = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-pubsub-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const dirs = Array.from({ length: nodes }, (_, i) => Path.join(data, `node-${i}`))
      yield* Weft.start(["dev", "--nodes", String(nodes), "--for", "120s", "--json", "--data", data])
      assert.isTrue(yield* untilEvery(dirs, (s) => s.peers.length === nodes - 1), "every node connected to every other")

      const subs = yield* Effect.forEach(subscribers, (i) => Weft.start(["sub", "news", "--node", dirs[i]!, "--json", "--count", "1"]))
      assert.isTrue(
        yield* untilEvery(subscribers.map((i) => dirs[i]!), (s) => s.gossip.topics.some((t) => t.topic === "news")),
        "every subscriber's node follows the topic"
      )
      // Subscriptions travel to the neighbours in the next gossip exchange.
      yield* Effect.sleep("500 millis")

      const published = yield* Weft.run(["pub", "news", "hello from node 0", "--node", dirs[0]!, "--json"], "30 seconds")
      assert.strictEqual(published.code, 0, published.stderr)
      const { id } = JSON.parse(Weft.linesOf(published.stdout)[0]!) as { id: string }
      assert.match(id, /^[0-9a-f]{64}$/)

      const ids = new Set(yield* Effect.forEach(dirs, (dir) => Effect.map(statusOf(dir), (s) => s.id)))
      for (const sub of subs) {
        const line = yield* Queue.take(sub.lines).pipe(Effect.timeout("20 seconds"))
        const received = JSON.parse(line) as Received
        assert.deepStrictEqual(received, { topic: "news", id, from: received.from, text: "hello from node 0" })
        assert.isTrue(ids.has(received.from), "it came from a node of the network")
        const result = yield* sub.exit.pipe(Effect.timeout("10 seconds"))
        assert.strictEqual(result.code, 0, result.stderr)
      }
    }), 180_000)

  it.live("pub and sub against a node that is not running fail with one line and status 1", () =>
    Effect.gen(function*() {
      for (const args of [["pub", "news", "x", "--node", "/nonexistent"], ["sub", "news", "--node", "/nonexistent"]]) {
        const result = yield* Weft.runHere(args)
        assert.strictEqual(result.code, 1)
        assert.match(result.stderr, /^weft: .*no node control socket at \/nonexistent/)
        assert.strictEqual(Weft.linesOf(result.stderr).length, 1)
      }
    }))
})
