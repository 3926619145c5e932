import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { chat } from "../src/chat.js"

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

/** A real `weft dev --nodes 2` on `data`, killed when the scope closes; waits for its ledger line. */
const devNetwork = (data: string) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, ["--import", "tsx", "packages/cli/src/bin.ts", "dev", "--nodes", "2", "--for", "120s", "--json", "--data", data], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })),
      (child) => Effect.sync(() => void (child.exitCode === null && child.kill("SIGKILL")))
    )
    return yield* Effect.async<{ readonly key: string }, Error>((resume) => {
      let buffered = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        for (const line of buffered.split("\n")) {
          if (line.includes("\"event\":\"ledger\"")) resume(Effect.succeed(JSON.parse(line) as { readonly key: string }))
        }
      })
      child.once("close", (code) => resume(Effect.fail(new Error(`weft dev exited (${code}) before its ledger was up`))))
    }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("weft dev did not start within 60 s") }))
  })

describe("examples/chat", () => {
  it.scopedLive("alice and bob exchange one message each way across the two nodes of a `weft dev` network", () =>
    Effect.gen(function*() {
      const data = yield* Effect.acquireRelease(
        Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-chat-"))),
        (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
      )
      const ledger = yield* devNetwork(data)
      const said = yield* chat({
        aliceNode: Path.join(data, "node-0"),
        aliceKey: ledger.key,
        bobNode: Path.join(data, "node-1"),
        bobKey: Path.join(data, "bob.json")
      })
      assert.deepStrictEqual(said.map((line) => [line.from, line.text]), [["alice", "hello bob, this is alice"], ["bob", "hi alice! bob here"]])
      assert.notStrictEqual(said[0]!.account, said[1]!.account)
    }), { timeout: 90_000 })
})
