import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Identity } from "../src/internal/core.js"
import * as Weft from "./weft.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join("/tmp", "weft-keygen-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("weft node keygen", () => {
  it.scopedLive("writes a 0600 key file that loads, and refuses to overwrite it", () =>
    Effect.gen(function*() {
      const file = Path.join(yield* tempDir, "keys", "identity.json")
      const created = yield* Weft.run(["node", "keygen", "--out", file, "--json"])
      assert.strictEqual(created.code, 0, created.stderr)
      const printed = JSON.parse(created.stdout) as { id: string; file: string }
      assert.strictEqual(printed.file, file)
      assert.strictEqual(Fs.statSync(file).mode & 0o777, 0o600)
      const identity = yield* Identity.load(file)
      assert.strictEqual(identity.id, printed.id)

      const before = Fs.readFileSync(file, "utf8")
      const again = yield* Weft.run(["node", "keygen", "--out", file])
      assert.notStrictEqual(again.code, 0)
      assert.strictEqual(again.stdout, "")
      assert.lengthOf(Weft.linesOf(again.stderr), 1)
      assert.match(again.stderr, /^weft: .*already exists; refusing to overwrite/)
      assert.strictEqual(Fs.readFileSync(file, "utf8"), before)
      assert.deepStrictEqual(Fs.readdirSync(Path.dirname(file)), ["identity.json"])
    }), 30_000)

  it.scopedLive("prints the node ID and the file path in text", () =>
    Effect.gen(function*() {
      const file = Path.join(yield* tempDir, "id.json")
      const result = yield* Weft.run(["node", "keygen", "-o", file])
      assert.strictEqual(result.code, 0, result.stderr)
      const id = /node ID {3}([a-z2-7]{52})/.exec(result.stdout)?.[1]
      assert.strictEqual(id, (yield* Identity.load(file)).id)
      assert.include(result.stdout, `key file  ${file}`)
    }), 30_000)
})
