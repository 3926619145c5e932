/**
 * Accounts: ML-DSA-65 key pairs (core's `Identity`), named by the SHA-256 of the public key. The same
 * key file format as a node identity, so one key can serve both; the account id is the node id's
 * 32 bytes written in hex.
 */
import { Identity, NodeId } from "@weft/core"
import type { WeftError } from "@weft/core"
import { Effect, Either } from "effect"
import { createHash } from "node:crypto"
import * as Id from "./Id.js"

/** An account's id (SHA-256 of its ML-DSA-65 public key). */
export type AccountId = Id.Id

/** An account's key pair and id. */
export interface Account {
  readonly id: AccountId
  readonly publicKey: Uint8Array
  readonly secretKey: Uint8Array
}

/** Length of an ML-DSA-65 public key. */
export const publicKeyBytes = Identity.publicKeyBytes
/** Length of an ML-DSA-65 signature. */
export const signatureBytes = Identity.signatureBytes

/** The account id of an ML-DSA-65 public key. */
export const idOf = (publicKey: Uint8Array): AccountId => Id.fromBytes(createHash("sha256").update(publicKey).digest())

/** The account of a node identity (same key). */
export const fromIdentity = (identity: Identity.Identity): Account => ({
  id: Id.fromBytes(NodeId.toBytes(identity.id)),
  publicKey: identity.publicKey,
  secretKey: identity.secretKey
})

/** The node identity of an account (same key). */
export const toIdentity = (account: Account): Identity.Identity => ({
  id: NodeId.fromBytes(Id.toBytes(account.id)),
  publicKey: account.publicKey,
  secretKey: account.secretKey
})

/** A fresh account; with a 32-byte seed it is deterministic. */
export const generate = (seed?: Uint8Array): Account => fromIdentity(Identity.generate(seed))

/** Signs deterministically with the account's secret key. */
export const sign = (account: Account, message: Uint8Array): Uint8Array => Identity.sign(toIdentity(account), message)

/** Verifies a signature; never throws. */
export const verify = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean =>
  Identity.verify(publicKey, message, signature)

/** Saves the account as an identity key file (JSON, mode 0600, atomic). */
export const save = (file: string, account: Account): Effect.Effect<void, WeftError.IdentityError> => Identity.save(file, toIdentity(account))

/** Loads and checks an account key file. */
export const load = (file: string): Effect.Effect<Account, WeftError.IdentityError> => Effect.map(Identity.load(file), fromIdentity)

/** Parses a key file's text. */
export const fromKeyFile = (text: string): Either.Either<Account, WeftError.IdentityError> => Either.map(Identity.fromKeyFile(text), fromIdentity)

/** The key file's text for an account. */
export const toKeyFile = (account: Account): string => Identity.toKeyFile(toIdentity(account))

/** `0x…`: the account id as people see it. */
export const display = (id: AccountId): string => Id.display(id)
