import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Encoding, Layer } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Identity from "../src/Identity.js"
import * as NodeId from "../src/NodeId.js"

const seed = (byte: number) => new Uint8Array(Identity.seedBytes).fill(byte)
const alice = Identity.generate(seed(1))
const bob = Identity.generate(seed(2))
const message = new TextEncoder().encode("hello weft")

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "weft-identity-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const failureReason = <A>(effect: Effect.Effect<A, { readonly reason: string }>) =>
  Effect.map(Effect.flip(effect), (error) => error.reason)

const keyFileWith = (patch: Record<string, unknown>) => JSON.stringify({ ...JSON.parse(Identity.toKeyFile(alice)), ...patch })

describe("Identity", () => {
  describe("keys", () => {
    it("has the ML-DSA-65 sizes and a node ID from its public key", () => {
      assert.strictEqual(alice.publicKey.length, Identity.publicKeyBytes)
      assert.strictEqual(alice.secretKey.length, Identity.secretKeyBytes)
      assert.strictEqual(alice.id, NodeId.fromPublicKey(alice.publicKey))
      assert.isTrue(Either.isRight(NodeId.parse(alice.id)))
    })

    it("is deterministic for a seed and distinct across seeds", () => {
      const again = Identity.generate(seed(1))
      assert.deepStrictEqual(again.publicKey, alice.publicKey)
      assert.deepStrictEqual(again.secretKey, alice.secretKey)
      assert.notStrictEqual(bob.id, alice.id)
      assert.notStrictEqual(Identity.generate().id, Identity.generate().id)
    })

    it("refuses a seed of the wrong length (a programming error)", () => {
      assert.throws(() => Identity.generate(new Uint8Array(31)))
    })
  })

  describe("sign and verify", () => {
    const signature = Identity.sign(alice, message)

    it("round-trips, with deterministic signatures", () => {
      assert.strictEqual(signature.length, Identity.signatureBytes)
      assert.isTrue(Identity.verify(alice.publicKey, message, signature))
      assert.deepStrictEqual(Identity.sign(alice, message), signature)
    })

    it("rejects a tampered message, signature or key", () => {
      const tamperedMessage = Uint8Array.from(message)
      tamperedMessage[0] = tamperedMessage[0]! ^ 1
      const tamperedSignature = Uint8Array.from(signature)
      tamperedSignature[100] = tamperedSignature[100]! ^ 1
      assert.isFalse(Identity.verify(alice.publicKey, tamperedMessage, signature))
      assert.isFalse(Identity.verify(alice.publicKey, message, tamperedSignature))
      assert.isFalse(Identity.verify(bob.publicKey, message, signature))
    })

    it("never throws on malformed input", () => {
      const cases: Array<[Uint8Array, Uint8Array]> = [
        [alice.publicKey.subarray(1), signature],
        [new Uint8Array(0), signature],
        [alice.publicKey, signature.subarray(1)],
        [alice.publicKey, new Uint8Array(0)],
        [alice.publicKey, new Uint8Array(Identity.signatureBytes + 1)],
        [new Uint8Array(Identity.publicKeyBytes).fill(0xff), new Uint8Array(Identity.signatureBytes).fill(0xff)]
      ]
      for (const [publicKey, sig] of cases) assert.isFalse(Identity.verify(publicKey, message, sig))
    })
  })

  describe("key file", () => {
    it.scopedLive("round-trips with mode 0600, replacing atomically", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = path.join(dir, "node.key")
        yield* Identity.save(file, alice)
        const loaded = yield* Identity.load(file)
        assert.strictEqual(loaded.id, alice.id)
        assert.deepStrictEqual(loaded.secretKey, alice.secretKey)
        const stat = yield* Effect.promise(() => fs.stat(file))
        assert.strictEqual(stat.mode & 0o777, 0o600)
        yield* Identity.save(file, bob)
        assert.strictEqual((yield* Identity.load(file)).id, bob.id)
        assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(dir)), ["node.key"])
      })
    )

    it.scopedLive("loadOrCreate creates the file and its directory once, then loads it", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = path.join(dir, "nested", "deeper", "node.key")
        const created = yield* Identity.loadOrCreate(file)
        const loaded = yield* Identity.loadOrCreate(file)
        assert.strictEqual(loaded.id, created.id)
        const stat = yield* Effect.promise(() => fs.stat(file))
        assert.strictEqual(stat.mode & 0o777, 0o600)
        assert.deepStrictEqual(yield* Effect.promise(() => fs.readdir(path.dirname(file))), ["node.key"])
      })
    )

    it.scopedLive("concurrent loadOrCreate calls agree on one identity", () =>
      Effect.gen(function* () {
        const file = path.join(yield* tempDir, "node.key")
        const ids = yield* Effect.all(Array.from({ length: 4 }, () => Identity.loadOrCreate(file)), { concurrency: "unbounded" })
        assert.strictEqual(new Set(ids.map((identity) => identity.id)).size, 1)
        assert.strictEqual((yield* Identity.load(file)).id, ids[0]!.id)
      })
    )

    it.scopedLive("layerFile provides the identity in the file", () =>
      Effect.gen(function* () {
        const file = path.join(yield* tempDir, "node.key")
        yield* Identity.save(file, alice)
        const identity = yield* Effect.provide(Identity.NodeIdentity, Identity.layerFile(file))
        assert.strictEqual(identity.id, alice.id)
        const given = yield* Effect.provide(Identity.NodeIdentity, Identity.layer(bob))
        assert.strictEqual(given.id, bob.id)
      })
    )

    const truncatedKey = Encoding.encodeBase64(alice.publicKey.subarray(0, 100))
    const badFiles: Array<[string, string, string]> = [
      ["not JSON", "{nope", "KeyFileFormat"],
      ["JSON but not an object", "[1,2]", "KeyFileVersion"],
      ["a wrong version", keyFileWith({ version: 2 }), "KeyFileVersion"],
      ["no version", keyFileWith({ version: undefined }), "KeyFileVersion"],
      ["a wrong algorithm", keyFileWith({ algorithm: "Ed25519" }), "KeyFileFormat"],
      ["a wrong kind", keyFileWith({ kind: "other" }), "KeyFileFormat"],
      ["a missing field", keyFileWith({ secretKey: undefined }), "KeyFileFormat"],
      ["a key that is not base64", keyFileWith({ publicKey: "!!!" }), "KeyFileFormat"],
      ["a nodeId that does not match", keyFileWith({ nodeId: bob.id }), "BadKey"],
      ["a truncated public key", keyFileWith({ publicKey: truncatedKey }), "BadKey"],
      ["a truncated secret key", keyFileWith({ secretKey: Encoding.encodeBase64(alice.secretKey.subarray(1)) }), "BadKey"],
      ["another node's secret key", keyFileWith({ secretKey: Encoding.encodeBase64(bob.secretKey) }), "BadKey"]
    ]
    for (const [name, text, reason] of badFiles) {
      it.scopedLive(`a key file with ${name} fails with ${reason}`, () =>
        Effect.gen(function* () {
          const file = path.join(yield* tempDir, "node.key")
          yield* Effect.promise(() => fs.writeFile(file, text))
          assert.strictEqual(yield* failureReason(Identity.load(file)), reason)
          // loadOrCreate must not paper over a damaged file by replacing it.
          assert.strictEqual(yield* failureReason(Identity.loadOrCreate(file)), reason)
          assert.strictEqual(yield* Effect.promise(() => fs.readFile(file, "utf8")), text)
        })
      )
    }

    it.scopedLive("a missing key file fails with KeyFileRead; an unwritable one with KeyFileWrite", () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        assert.strictEqual(yield* failureReason(Identity.load(path.join(dir, "absent.key"))), "KeyFileRead")
        assert.strictEqual(yield* failureReason(Identity.save(path.join(dir, "no", "such", "dir.key"), alice)), "KeyFileWrite")
        const layerFailure = yield* Effect.flip(Layer.build(Identity.layerFile(dir)))
        assert.strictEqual(layerFailure.reason, "KeyFileRead")
      })
    )
  })
})
