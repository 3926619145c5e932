import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Weft from "./weft.js"

const invocations: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
  [["node", "status", "--node", "/nonexistent/x"], /no node control socket at \/nonexistent\/x \(is the node running\?/],
  [["node", "call", "--node", "/nonexistent/x", "DevPing", "Ping", "{}"], /no node control socket at/],
  [["node", "status"], /--node/],
  [["node", "call", "--node", "/x"], /<service>/],
  // The payload and --peer are checked before the node is asked.
  [["node", "call", "--node", "/nonexistent/x", "DevPing", "Ping", "{from"], /payload is not JSON/],
  [["node", "call", "--node", "/nonexistent/x", "--peer", "not-an-id", "DevPing", "Ping", "{}"], /--peer is not a node ID/],
  [["dev", "--for", "banana"], /--for: not a duration/],
  [["dev", "--for", "5"], /--for: not a duration/],
  [["dev", "--nodes", "0"], /--nodes must be between 1 and/],
  [["dev", "--nodes", "abc"], /abc/],
  [["dev", "--data", `/tmp/${"d".repeat(100)}`], /control socket path is longer than/],
  [["node", "run"], /--data/],
  [["node", "run", "--data", "/nonexistent/n", "--listen", "udp:127.0.0.1:0", "--listen", "udp:127.0.0.1:7100"], /--listen: 2 addresses given, but a node supports one transport today/],
  [["node", "run", "--data", "/nonexistent/n", "--listen", "localhost:7100"], /--listen: not a udp address: "localhost:7100"/],
  [["node", "run", "--data", "/nonexistent/n", "--connect", "udp:example.org:7100"], /--connect: not a udp address/],
  [["node", "run", "--data", "/nonexistent/n", "--config", "/nonexistent/node.json"], /cannot read the node config \/nonexistent\/node\.json/],
  [["bogus"], /subcommand/],
  [["node", "status", "--node", "/x", "--bogus"], /--bogus/]
]

// Each is a node config file and what the error line must name.
const badConfigs: ReadonlyArray<readonly [string, RegExp]> = [
  ["{\"transports\": [{\"kind\": \"tcp\"}]}", /: transports\.0\.kind: must be "udp"/],
  ["{\"transports\": [{\"kind\": \"udp\", \"host\": \"localhost\"}]}", /: transports\.0\.host: must be an IP literal/],
  ["{\"transports\": [{\"kind\": \"udp\"}, {\"kind\": \"udp\", \"port\": 7100}]}", /: transports: 2 transports given, but a node supports one transport today/],
  ["{\"limits\": {\"callTimeout\": \"soon\"}}", /: limits\.callTimeout: must be a duration/],
  ["{\"limits\": {\"peersMax\": -1}}", /: limits\.peersMax: must be a non-negative integer, got -1/],
  ["{\"connect\": [\"udp:127.0.0.1:0\"]}", /: connect\.0: must be a udp address/],
  ["{\"listen\": []}", /: listen: is not a known field/],
  ["{\"transports\": [", /node\.json is not JSON/]
]

const assertOneErrorLine = (result: Weft.Result, expected: RegExp, label: string) => {
  assert.notStrictEqual(result.code, 0, label)
  assert.strictEqual(result.stdout, "", label)
  assert.lengthOf(Weft.linesOf(result.stderr), 1, `${label}: ${result.stderr}`)
  assert.match(result.stderr, /^weft: /, label)
  assert.match(result.stderr, expected, label)
}

describe("bad invocations", () => {
  it.live("exit non-zero with one `weft:` line on stderr and nothing on stdout", () =>
    Effect.gen(function*() {
      for (const [args, expected] of invocations) {
        assertOneErrorLine(yield* Weft.runHere(args), expected, `weft ${args.join(" ")}`)
      }
    }))

  it.scopedLive("a bad node config is one line naming the file and the field, and no node starts", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-config-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      for (const [text, expected] of badConfigs) {
        // The default config file, <data>/node.json.
        Fs.writeFileSync(Path.join(dir, "node.json"), text)
        const result = yield* Weft.runHere(["node", "run", "--data", dir])
        assertOneErrorLine(result, expected, text)
        assert.include(result.stderr, Path.join(dir, "node.json"))
      }
      assert.deepStrictEqual(Fs.readdirSync(dir), ["node.json"])
    }))

  it.live("--help works for every command and exits 0", () =>
    Effect.gen(function*() {
      const commands = [[], ["dev"], ["node"], ["node", "keygen"], ["node", "run"], ["node", "status"], ["node", "call"]]
      for (const command of commands) {
        const result = yield* Weft.runHere([...command, "--help"])
        assert.strictEqual(result.code, 0, command.join(" "))
        assert.include(result.stdout, "USAGE")
      }
      const help = (command: ReadonlyArray<string>) => Weft.runHere([...command, "--help"]).pipe(Effect.map((result) => result.stdout))
      assert.include(yield* help(["dev"]), "--for DURATION")
      assert.include(yield* help(["node", "run"]), "--listen ADDR")
      assert.include(yield* help(["node", "call"]), "<json-payload>")
    }))

  // The same through the real executable, once each: bin.ts sets the exit status and keeps stdout clean.
  it.live("the weft executable reports a bad invocation as one line with exit status 1, and prints help", () =>
    Effect.gen(function*() {
      const [bad, help] = yield* Effect.all([Weft.run(["dev", "--for", "banana"]), Weft.run(["node", "run", "--help"])], { concurrency: 2 })
      assert.strictEqual(bad.code, 1)
      assertOneErrorLine(bad, /^weft: --for: not a duration/, "weft dev --for banana")
      assert.strictEqual(help.code, 0, help.stderr)
      assert.include(help.stdout, "--supervised")
    }), 60_000)
})
