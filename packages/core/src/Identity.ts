/**
 * A node's identity: an ML-DSA-65 key pair whose public key names the node (see `NodeId.ts`).
 * Signing is deterministic so that seeded simulations replay exactly; verification never throws.
 * The key file is JSON, written atomically with mode 0600.
 */
import { ml_dsa65 } from "@noble/post-quantum/ml-dsa.js"
import { Context, Effect, Either, Encoding, Layer, Schema } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as NodeId from "./NodeId.js"
import { IdentityError } from "./WeftError.js"

/** A node's key pair and the node ID derived from its public key. */
export interface Identity {
  readonly id: NodeId.NodeId
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

/** Length of an ML-DSA-65 public key. */
export const publicKeyBytes = 1952
/** Length of an ML-DSA-65 secret key. */
export const secretKeyBytes = 4032
/** Length of an ML-DSA-65 signature. */
export const signatureBytes = 3309
/** Length of the seed that makes `generate` deterministic. */
export const seedBytes = 32

/** The key file's format version this code writes and reads. */
export const keyFileVersion = 1

const fromKeys = (keys: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array }): Identity => ({
  id: NodeId.fromPublicKey(keys.publicKey),
  publicKey: keys.publicKey,
  secretKey: keys.secretKey
})

/** A fresh key pair; with a 32-byte seed it is deterministic (simulations derive seeds from their seed). */
export const generate = (seed?: Uint8Array): Identity => {
  if (seed !== undefined && seed.length !== seedBytes) {
    throw new Error(`Identity.generate: expected a ${seedBytes}-byte seed, got ${seed.length}`)
  }
  return fromKeys(ml_dsa65.keygen(seed))
}

/** Signs with the identity's secret key; deterministic, so seeded simulations replay exactly. */
export const sign = (identity: Identity, message: Uint8Array): Uint8Array =>
  ml_dsa65.sign(message, identity.secretKey, { extraEntropy: false })

/** Verifies a signature; never throws (a malformed key or signature is simply invalid). */
export const verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean => {
  // Checked here so that noble's own length assertions (which throw) are never reached.
  if (publicKey.length !== publicKeyBytes || signature.length !== signatureBytes) return false
  try {
    return ml_dsa65.verify(signature, message, publicKey)
  } catch {
    return false
  }
}

const KeyFile = Schema.Struct({
  version: Schema.Literal(keyFileVersion),
  kind: Schema.Literal("weft-identity"),
  algorithm: Schema.Literal("ML-DSA-65"),
  nodeId: Schema.String,
  publicKey: Schema.String,
  secretKey: Schema.String
})

const fail = (reason: IdentityError["reason"], detail: string) => new IdentityError({ reason, detail })

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** The key file's text for an identity. */
export const toKeyFile = (identity: Identity): string =>
  JSON.stringify(
    {
      version: keyFileVersion,
      kind: "weft-identity",
      algorithm: "ML-DSA-65",
      nodeId: identity.id,
      publicKey: Encoding.encodeBase64(identity.publicKey),
      secretKey: Encoding.encodeBase64(identity.secretKey)
    },
    null,
    2
  ) + "\n"

const decodeKey = (name: string, text: string, length: number): Either.Either<Uint8Array, IdentityError> =>
  Encoding.decodeBase64(text).pipe(
    Either.mapLeft(() => fail("KeyFileFormat", `${name} is not base64`)),
    Either.filterOrLeft(
      (bytes) => bytes.length === length,
      (bytes) => fail("BadKey", `${name} is ${bytes.length} bytes, expected ${length}`)
    )
  )

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((byte, index) => byte === b[index])

const checkKeys = (nodeId: string, publicKey: Uint8Array, secretKey: Uint8Array): Either.Either<Identity, IdentityError> => {
  const identity = fromKeys({ publicKey, secretKey })
  if (identity.id !== nodeId) return Either.left(fail("BadKey", `nodeId ${nodeId} does not match the public key (${identity.id})`))
  // The secret key embeds enough to recompute the public key: a mismatched pair would sign uselessly.
  const derived = Either.try(() => ml_dsa65.getPublicKey(secretKey))
  return Either.isRight(derived) && sameBytes(derived.right, publicKey)
    ? Either.right(identity)
    : Either.left(fail("BadKey", "the secret key does not match the public key"))
}

/** Parses and checks a key file's text. */
export const fromKeyFile = (text: string): Either.Either<Identity, IdentityError> => {
  const json = Either.try(() => JSON.parse(text) as unknown)
  if (Either.isLeft(json)) return Either.left(fail("KeyFileFormat", "the key file is not JSON"))
  const version = typeof json.right === "object" && json.right !== null ? (json.right as { version?: unknown }).version : undefined
  if (version !== keyFileVersion) {
    return Either.left(fail("KeyFileVersion", `unsupported key file version ${JSON.stringify(version)}, expected ${keyFileVersion}`))
  }
  return Schema.decodeUnknownEither(KeyFile)(json.right).pipe(
    Either.mapLeft((error) => fail("KeyFileFormat", error.message)),
    Either.flatMap((file) =>
      Either.all([decodeKey("publicKey", file.publicKey, publicKeyBytes), decodeKey("secretKey", file.secretKey, secretKeyBytes)]).pipe(
        Either.flatMap(([publicKey, secretKey]) => checkKeys(file.nodeId, publicKey, secretKey))
      )
    )
  )
}

const writeTemp = (target: string, text: string): Effect.Effect<string, IdentityError> =>
  Effect.tryPromise({
    try: async () => {
      const temp = `${target}.${randomBytes(6).toString("hex")}.tmp`
      // mode applies at creation, so the secret key is never readable by others, not even briefly.
      const handle = await fs.open(temp, "wx", 0o600)
      try {
        await handle.writeFile(text)
        await handle.sync()
      } finally {
        await handle.close()
      }
      return temp
    },
    catch: (cause) => fail("KeyFileWrite", `${target}: ${describe(cause)}`)
  })

const removeQuietly = (file: string) => Effect.promise(() => fs.rm(file, { force: true }).catch(() => undefined))

/** Key file: JSON, written with mode 0600, atomically (temp file + rename), replacing any existing file. */
export const save = (file: string, identity: Identity): Effect.Effect<void, IdentityError> =>
  Effect.flatMap(writeTemp(file, toKeyFile(identity)), (temp) =>
    Effect.tryPromise({
      try: () => fs.rename(temp, file),
      catch: (cause) => fail("KeyFileWrite", `${file}: ${describe(cause)}`)
    }).pipe(Effect.tapError(() => removeQuietly(temp)))
  )

/** Loads and checks a key file (version, algorithm, key lengths, nodeId matching the public key). */
export const load = (file: string): Effect.Effect<Identity, IdentityError> =>
  Effect.tryPromise({
    try: () => fs.readFile(file, "utf8"),
    catch: (cause) => fail("KeyFileRead", `${file}: ${describe(cause)}`)
  }).pipe(
    Effect.flatMap((text) => Either.mapLeft(fromKeyFile(text), (error) => fail(error.reason, `${file}: ${error.detail}`)))
  )

const isMissing = (cause: unknown): boolean => (cause as { code?: unknown } | null)?.code === "ENOENT"

const exists = (file: string): Effect.Effect<boolean, IdentityError> =>
  Effect.tryPromise({
    try: () => fs.stat(file).then(() => true, (cause) => (isMissing(cause) ? false : Promise.reject(cause))),
    catch: (cause) => fail("KeyFileRead", `${file}: ${describe(cause)}`)
  })

/** Publishes a temp file under `file` unless it already exists (a concurrent creator won: keep theirs). */
const linkNew = (temp: string, file: string): Effect.Effect<boolean, IdentityError> =>
  Effect.tryPromise({
    try: () =>
      fs.link(temp, file).then(
        () => true,
        (cause) => ((cause as { code?: unknown }).code === "EEXIST" ? false : Promise.reject(cause))
      ),
    catch: (cause) => fail("KeyFileWrite", `${file}: ${describe(cause)}`)
  }).pipe(Effect.ensuring(removeQuietly(temp)))

const create = (file: string): Effect.Effect<Identity, IdentityError> =>
  Effect.gen(function* () {
    yield* Effect.tryPromise({
      try: () => fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 }),
      catch: (cause) => fail("KeyFileWrite", `${path.dirname(file)}: ${describe(cause)}`)
    })
    const identity = generate()
    const temp = yield* writeTemp(file, toKeyFile(identity))
    const created = yield* linkNew(temp, file)
    return created ? identity : yield* load(file)
  })

/** Loads the key file, or creates it (and its directory) if absent; never overwrites an existing file. */
export const loadOrCreate = (file: string): Effect.Effect<Identity, IdentityError> =>
  Effect.flatMap(exists(file), (found) => (found ? load(file) : create(file)))

/** The node's identity as a service. */
export class NodeIdentity extends Context.Tag("@weft/core/Identity")<NodeIdentity, Identity>() {}

/** Provides a given identity. */
export const layer = (identity: Identity): Layer.Layer<NodeIdentity> => Layer.succeed(NodeIdentity, identity)

/** Provides the identity in a key file, creating the file if it is absent. */
export const layerFile = (file: string): Layer.Layer<NodeIdentity, IdentityError> =>
  Layer.effect(NodeIdentity, loadOrCreate(file))
