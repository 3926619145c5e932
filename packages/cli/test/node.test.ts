import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Weft from "./weft.js"

interface Line {
  readonly event: string
  readonly id: string
  readonly control: string
  readonly peers: ReadonlyArray<string>
  readonly reason?: string
}

// Reads `weft dev --json` lines until both nodes report a peer; returns the two nodes' lines.
const awaitConnected = (running: Weft.Running) =>
  Effect.gen(function*() {
    const latest = new Map<string, Line>()
    while (true) {
      const line = JSON.parse(yield* Queue.take(running.lines)) as Line
      latest.set(line.id, line)
      const nodes = [...latest.values()]
      if (line.event === "status" && nodes.length === 2 && nodes.every((node) => node.peers.length === 1)) return nodes
    }
  }).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("the dev nodes did not connect") }))

describe("weft node status / call against a running `weft dev`", () => {
  // --for is only a safety net (the test stops it with SIGINT); it is long because the process spawns
  // below take a few seconds each when the other test files run alongside.
  it.scopedLive("reports status, calls DevPing locally and on a peer, and Ctrl-C stops the network cleanly", () =>
    Effect.gen(function*() {
      const running = yield* Weft.start(["dev", "--nodes", "2", "--for", "90s", "--json"])
      const [a, b] = yield* awaitConnected(running)
      const node = a!
      const peer = b!

      const statusJson = yield* Weft.run(["node", "status", "--node", node.control, "--json"])
      assert.strictEqual(statusJson.code, 0, statusJson.stderr)
      assert.lengthOf(Weft.linesOf(statusJson.stdout), 1)
      const status = JSON.parse(statusJson.stdout)
      assert.strictEqual(status.id, node.id)
      assert.strictEqual(status.pid, running.child.pid)
      assert.strictEqual(status.control, node.control)
      assert.deepStrictEqual(status.peers.map((p: { id: string }) => p.id), [peer.id])
      assert.deepStrictEqual(status.services, [{ name: "DevPing", methods: ["Ping"] }])
      assert.isAbove(status.messages.sent, 0)

      // A data directory works as well as the socket path.
      const statusText = yield* Weft.run(["node", "status", "--node", Path.dirname(node.control)])
      assert.strictEqual(statusText.code, 0, statusText.stderr)
      assert.match(statusText.stdout, new RegExp(`^node +${node.id}$`, "m"))
      assert.match(statusText.stdout, new RegExp(`^  ${peer.id} `, "m"))
      assert.match(statusText.stdout, /^ {2}DevPing: Ping$/m)

      const local = yield* Weft.run(["node", "call", "--node", node.control, "DevPing", "Ping", "{\"from\":\"test\"}"])
      assert.strictEqual(local.code, 0, local.stderr)
      const localReply = JSON.parse(local.stdout)
      assert.strictEqual(localReply.from, node.id)
      assert.isNumber(localReply.at)

      const remote = yield* Weft.run(["node", "call", "--node", node.control, "--peer", peer.id, "DevPing", "Ping", "{\"from\":\"test\"}"])
      assert.strictEqual(remote.code, 0, remote.stderr)
      assert.strictEqual(JSON.parse(remote.stdout).from, peer.id)

      // Failures: one line on stderr, nothing on stdout, non-zero exit.
      const failures = yield* Effect.all([
        Weft.run(["node", "call", "--node", node.control, "DevPing", "Pong", "{}"]),
        Weft.run(["node", "call", "--node", node.control, "Nope", "Ping", "{}"]),
        Weft.run(["node", "call", "--node", node.control, "DevPing", "Ping", "{\"frm\":1}"]),
        Weft.run(["node", "call", "--node", node.control, "DevPing", "Ping", "{from"]),
        Weft.run(["node", "call", "--node", node.control, "--peer", "not-an-id", "DevPing", "Ping", "{}"])
      ], { concurrency: "unbounded" })
      for (const failure of failures) {
        assert.notStrictEqual(failure.code, 0)
        assert.strictEqual(failure.stdout, "")
        assert.lengthOf(Weft.linesOf(failure.stderr), 1, failure.stderr)
        assert.match(failure.stderr, /^weft: /)
      }
      assert.include(failures[0]!.stderr, "Pong")
      assert.include(failures[1]!.stderr, "Nope")
      assert.include(failures[2]!.stderr, "DevPing.Ping failed")
      assert.include(failures[3]!.stderr, "not JSON")
      assert.include(failures[4]!.stderr, "--peer")

      running.child.kill("SIGINT")
      const result = yield* running.exit.pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no exit after SIGINT") }))
      assert.strictEqual(result.code, 0, result.stderr)
      const last = JSON.parse(Weft.linesOf(result.stdout).at(-1)!) as Line
      assert.strictEqual(last.event, "stopped")
      assert.strictEqual(last.reason, "interrupted")
      assert.isFalse(Fs.existsSync(node.control))
    }), 120_000)
})
