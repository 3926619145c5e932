import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Weft from "./weft.js"

const invocations: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
  [["node", "status", "--node", "/nonexistent/x"], /no node control socket at \/nonexistent\/x \(is the node running\?/],
  [["node", "call", "--node", "/nonexistent/x", "DevPing", "Ping", "{}"], /no node control socket at/],
  [["node", "status"], /--node/],
  [["node", "call", "--node", "/x"], /<service>/],
  [["dev", "--for", "banana"], /--for: not a duration/],
  [["dev", "--for", "5"], /--for: not a duration/],
  [["dev", "--nodes", "0"], /--nodes must be between 1 and/],
  [["dev", "--nodes", "abc"], /abc/],
  [["dev", "--data", `/tmp/${"d".repeat(100)}`], /control socket path is longer than/],
  [["bogus"], /subcommand/],
  [["node", "status", "--node", "/x", "--bogus"], /--bogus/]
]

describe("bad invocations", () => {
  it.live("exit non-zero with one `weft:` line on stderr and nothing on stdout", () =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach(invocations, ([args]) => Weft.run(args), { concurrency: 4 })
      results.forEach((result, i) => {
        const [args, expected] = invocations[i]!
        const label = `weft ${args.join(" ")}`
        assert.notStrictEqual(result.code, 0, label)
        assert.strictEqual(result.stdout, "", label)
        assert.lengthOf(Weft.linesOf(result.stderr), 1, `${label}: ${result.stderr}`)
        assert.match(result.stderr, /^weft: /, label)
        assert.match(result.stderr, expected, label)
      })
    }), 120_000)

  it.live("--help works for every command and exits 0", () =>
    Effect.gen(function*() {
      const commands = [[], ["dev"], ["node"], ["node", "keygen"], ["node", "status"], ["node", "call"]]
      const results = yield* Effect.forEach(commands, (command) => Weft.run([...command, "--help"]), { concurrency: 3 })
      results.forEach((result, i) => {
        assert.strictEqual(result.code, 0, commands[i]!.join(" "))
        assert.include(result.stdout, "USAGE")
      })
      assert.include(results[5]!.stdout, "<json-payload>")
      assert.include(results[1]!.stdout, "--for DURATION")
    }), 120_000)
})
