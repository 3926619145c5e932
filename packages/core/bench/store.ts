/**
 * Cases of `npm run bench`: the content store on lmdb (`Store.layerLmdb`) against raw lmdb
 * `putSync`/`get` in the same run, each in its own temporary directory with the same lmdb options.
 *
 * The store's put hashes the object (SHA-256), checks its limits and writes in one ACID transaction;
 * its get reads and hashes again. The baseline does neither: it writes and reads under ready-made
 * 32-byte keys. So the ratio is the whole price of content addressing and the paired check.
 */
import type { Scope } from "effect"
import { Context, Effect, Layer } from "effect"
import { open } from "lmdb"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Limits from "../src/Limits.js"
import * as Store from "../src/Store.js"
import type { StoreError } from "../src/WeftError.js"
import type { Case } from "./harness.js"

const objectBytes = 256

/** A fresh object (or key) each call: a counter in the first bytes, so no put is a repeat. */
const counterBytes = (length: number) => {
  let next = 0
  return (): Uint8Array => {
    const bytes = new Uint8Array(length)
    new DataView(bytes.buffer).setFloat64(0, next++)
    return bytes
  }
}

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-bench-store-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const rawLmdb = (dir: string) =>
  Effect.acquireRelease(
    Effect.sync(() => open<Uint8Array, Uint8Array>({ path: dir, encoding: "binary", keyEncoding: "binary" })),
    (db) => Effect.promise(() => db.close())
  )

/** Stored objects the get cases read, round robin. */
const readable = 4096

const storeCases = (store: Store.Service, raw: ReturnType<typeof open<Uint8Array, Uint8Array>>, quick: boolean) =>
  Effect.gen(function*() {
    const storeObject = counterBytes(objectBytes)
    const rawKey = counterBytes(32)
    const payload = new Uint8Array(objectBytes).fill(7)
    const storedIds = yield* store.putAll(Array.from({ length: readable }, storeObject))
    const rawKeys = Array.from({ length: readable }, rawKey)
    raw.transactionSync(() => rawKeys.forEach((key) => raw.putSync(key, payload)))
    let readAt = 0
    const puts: Case = {
      bench: `store put (${objectBytes} B, lmdb)`,
      metric: "store_put",
      unit: "puts/s",
      ops: quick ? 200 : 2000,
      subject: { name: "Store.put", run: (ops) => Effect.gen(function*() { for (let i = 0; i < ops; i++) yield* store.put(storeObject()) }) },
      baseline: { name: "lmdb putSync", run: (ops) => Effect.sync(() => { for (let i = 0; i < ops; i++) raw.putSync(rawKey(), payload) }) }
    }
    const gets: Case = {
      bench: `store get (${objectBytes} B, lmdb)`,
      metric: "store_get",
      unit: "gets/s",
      ops: quick ? 20_000 : 200_000,
      subject: {
        name: "Store.get",
        run: (ops) =>
          Effect.gen(function*() {
            for (let i = 0; i < ops; i++) {
              const found = yield* store.get(storedIds[readAt++ % readable]!)
              if (found._tag === "None") throw new Error("a stored object was not found")
            }
          })
      },
      baseline: {
        name: "lmdb get",
        run: (ops) =>
          Effect.sync(() => {
            for (let i = 0; i < ops; i++) if (raw.get(rawKeys[readAt++ % readable]!) === undefined) throw new Error("a stored value was not found")
          })
      }
    }
    return [puts, gets]
  })

/** The store cases (lmdb in a temporary directory, removed when the scope closes) against raw lmdb. */
export const cases = (quick: boolean): Effect.Effect<ReadonlyArray<Case>, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const context = yield* Layer.build(Store.layerLmdb(Path.join(dir, "store")).pipe(Layer.provide(Limits.layer())))
    const raw = yield* rawLmdb(Path.join(dir, "raw"))
    return yield* storeCases(Context.get(context, Store.Store), raw, quick)
  })
