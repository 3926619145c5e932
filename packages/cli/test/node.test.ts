import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Weft from "./weft.js"

interface Line {
  readonly event: string
  readonly t: number
  readonly index?: number
  readonly id: string
  readonly pid: number
  readonly control: string
  readonly peers: ReadonlyArray<string>
  readonly code?: number | null
  readonly signal?: string | null
  readonly reason?: string
  readonly nodes?: number
}

const decode = (line: string) => JSON.parse(line) as Line

// Reads `weft dev --json` lines until every node has reported all the others as peers.
const awaitConnected = (running: Weft.Running, nodes: number) =>
  Effect.gen(function*() {
    const started = yield* Weft.takeUntil(running, decode, (_, seen) => seen.length === nodes, "60 seconds")
    assert.deepStrictEqual(started.map((line) => line.event), Array(nodes).fill("node"))
    const connected = new Set<string>()
    yield* Weft.takeUntil(running, decode, (line) => {
      if (line.event === "status" && line.peers.length === nodes - 1) connected.add(line.id)
      return connected.size === nodes
    }, "30 seconds")
    return started
  })

// `weft node status` and `weft node call` against a dev node, as a user would try them.
const statusAndCalls = (node: Line, peer: Line, devPid: number) =>
  Effect.gen(function*() {
    const call = (...args: ReadonlyArray<string>) => Weft.run(["node", "call", "--node", node.control, ...args])
    const [statusJson, statusText, local, remote] = yield* Effect.all([
      Weft.run(["node", "status", "--node", node.control, "--json"]),
      // A data directory works as well as the socket path.
      Weft.run(["node", "status", "--node", Path.dirname(node.control)]),
      call("DevPing", "Ping", "{\"from\":\"test\"}"),
      call("--peer", peer.id, "DevPing", "Ping", "{\"from\":\"test\"}")
    ], { concurrency: 2 })

    assert.strictEqual(statusJson.code, 0, statusJson.stderr)
    assert.lengthOf(Weft.linesOf(statusJson.stdout), 1)
    const status = JSON.parse(statusJson.stdout)
    assert.strictEqual(status.id, node.id)
    // The node runs in a process of its own.
    assert.strictEqual(status.pid, node.pid)
    assert.notStrictEqual(status.pid, devPid)
    assert.strictEqual(status.control, node.control)
    assert.include(status.peers.map((p: { id: string }) => p.id), peer.id)
    // A dev node serves the dev ping, the content store's sync, the ledger and ephemeral messages.
    const services = status.services.map((s: { name: string }) => s.name).sort()
    assert.deepStrictEqual(services, ["DevPing", "Ephemeral", "Ledger", "StoreSync"])
    assert.deepInclude(status.services, { name: "DevPing", methods: ["Ping"] })
    assert.isAbove(status.messages.sent, 0)

    assert.strictEqual(statusText.code, 0, statusText.stderr)
    assert.match(statusText.stdout, new RegExp(`^node +${node.id}$`, "m"))
    assert.match(statusText.stdout, new RegExp(`^  ${peer.id} `, "m"))
    assert.match(statusText.stdout, /^ {2}DevPing: Ping$/m)

    assert.strictEqual(local.code, 0, local.stderr)
    const localReply = JSON.parse(local.stdout)
    assert.strictEqual(localReply.from, node.id)
    assert.isNumber(localReply.at)
    assert.strictEqual(remote.code, 0, remote.stderr)
    assert.strictEqual(JSON.parse(remote.stdout).from, peer.id)

    // Failures the node reports: one line on stderr, nothing on stdout, non-zero exit. These run the
    // command in this process (`bad invocations` checks the executable prints such lines alike).
    const callHere = (...args: ReadonlyArray<string>) => Weft.runHere(["node", "call", "--node", node.control, ...args])
    const failures = yield* Effect.all([
      callHere("DevPing", "Pong", "{}"),
      callHere("Nope", "Ping", "{}"),
      callHere("DevPing", "Ping", "{\"frm\":1}")
    ])
    for (const failure of failures) {
      assert.notStrictEqual(failure.code, 0)
      assert.strictEqual(failure.stdout, "")
      assert.lengthOf(Weft.linesOf(failure.stderr), 1, failure.stderr)
      assert.match(failure.stderr, /^weft: /)
    }
    assert.include(failures[0]!.stderr, "Pong")
    assert.include(failures[1]!.stderr, "Nope")
    assert.include(failures[2]!.stderr, "DevPing.Ping failed")
  })

// Kills node 2 and checks that weft dev reports it once and samples the two others, still peers.
const killOne = (running: Weft.Running, nodes: ReadonlyArray<Line>) =>
  Effect.gen(function*() {
    const victim = nodes[2]!
    process.kill(victim.pid, "SIGKILL")
    const exited = (yield* Weft.takeUntil(running, decode, (line) => line.event === "exited", "10 seconds")).at(-1)!
    assert.deepInclude(exited, { event: "exited", index: 2, id: victim.id, pid: victim.pid, code: null, signal: "SIGKILL" })

    // A tick sampled just before the death may print after the exited line: only later ticks count.
    const laterTick = (line: Line) => line.event === "status" && line.t > exited.t
    const after = (yield* Weft.takeUntil(running, decode, (_, seen) => seen.filter(laterTick).length >= 6, "15 seconds")).filter(laterTick)
    assert.isEmpty(after.filter((line) => line.id === victim.id))
    for (const [self, other] of [[nodes[0]!, nodes[1]!], [nodes[1]!, nodes[0]!]] as const) {
      const lines = after.filter((line) => line.id === self.id)
      assert.isAtLeast(lines.length, 2)
      for (const line of lines) assert.include(line.peers, other.id)
      assert.isTrue(Weft.isAlive(self.pid))
    }
  })

describe("a running `weft dev`", () => {
  // --for is only a safety net: the test stops dev with SIGINT.
  it.scopedLive("answers weft node status / call, survives a node process dying, and stops cleanly on SIGINT", () =>
    Effect.gen(function*() {
      const running = yield* Weft.start(["dev", "--nodes", "3", "--for", "120s", "--json"])
      const nodes = yield* awaitConnected(running, 3)
      yield* statusAndCalls(nodes[0]!, nodes[1]!, running.child.pid!)
      yield* killOne(running, nodes)

      running.child.kill("SIGINT")
      const result = yield* running.exit.pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("no exit after SIGINT") }))
      assert.strictEqual(result.code, 0, result.stderr)
      const lines = Weft.linesOf(result.stdout).map(decode)
      assert.lengthOf(lines.filter((line) => line.event === "exited"), 1)
      assert.deepInclude(lines.at(-1)!, { event: "stopped", reason: "interrupted", nodes: 3 })
      for (const node of nodes) {
        assert.isFalse(Weft.isAlive(node.pid), `node process ${node.pid} outlived weft dev`)
        assert.isFalse(Fs.existsSync(node.control))
      }
    }), 180_000)
})
