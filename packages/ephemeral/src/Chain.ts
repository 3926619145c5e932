/**
 * What the ephemeral service needs from a ledger, as a service: the recent block hashes (a message's
 * rough timestamp must be one of them) and the lattice key registry (the chain as a public-key server
 * for secure channels). The ledger's node implements it; `layerMemory` is an in-memory chain for tests
 * and examples.
 */
import { Context, Effect, Layer, Option } from "effect"
import { createHash } from "node:crypto"

/** An account id: the SHA-256 of its ML-DSA-65 public key, as 64 lowercase hex characters (the ledger's `Id`). */
export type AccountId = string

/** The keys an account published on the chain. */
export interface LatticeKey {
  /** ML-KEM-768 encapsulation key: channels are opened to it. */
  readonly kemPublicKey: Uint8Array
  /** ML-DSA-65 public key: channel openings from the account are signed with it. */
  readonly dsaPublicKey: Uint8Array
}

/** The ledger as the ephemeral service sees it. */
export class ChainView extends Context.Tag("@weft/ephemeral/ChainView")<ChainView, {
  /** The hashes of the most recent blocks, newest first, as many as the view keeps (up to the node's blockDepth). */
  readonly recentBlockHashes: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** The keys `account` registered, if any. */
  readonly latticeKey: (account: AccountId) => Effect.Effect<Option.Option<LatticeKey>>
}>() {}

/** The account id of an ML-DSA-65 public key. */
export const accountOf = (dsaPublicKey: Uint8Array): AccountId => createHash("sha256").update(dsaPublicKey).digest("hex")

/** An in-memory chain: blocks and key registrations are appended by hand. */
export interface Memory {
  /** Appends a block (its hash is SHA-256 of `label`, or of the height when none is given); returns its hash. */
  readonly addBlock: (label?: string) => Uint8Array
  /** Registers `keys` for the account they name (`accountOf(dsaPublicKey)`); returns the account. */
  readonly register: (keys: LatticeKey) => AccountId
  readonly view: Context.Tag.Service<ChainView>
}

/** A fresh in-memory chain holding `blocks` initial blocks and keeping the newest `depth` hashes. */
export const makeMemory = (options: { readonly blocks?: number | undefined; readonly depth?: number | undefined } = {}): Memory => {
  const depth = options.depth ?? 256
  const hashes: Array<Uint8Array> = []
  const keys = new Map<AccountId, LatticeKey>()
  let height = 0
  const addBlock = (label?: string): Uint8Array => {
    const blockHash = new Uint8Array(createHash("sha256").update(label ?? `weft/ephemeral/memory-block/${height}`).digest())
    height++
    hashes.unshift(blockHash)
    if (hashes.length > depth) hashes.length = depth
    return blockHash
  }
  for (let index = 0; index < (options.blocks ?? 1); index++) addBlock()
  const register = (key: LatticeKey): AccountId => {
    const account = accountOf(key.dsaPublicKey)
    keys.set(account, key)
    return account
  }
  return {
    addBlock,
    register,
    view: {
      recentBlockHashes: Effect.sync(() => hashes.slice()),
      latticeKey: (account) => Effect.sync(() => Option.fromNullable(keys.get(account.toLowerCase())))
    }
  }
}

/** The in-memory chain as the `ChainView` service. */
export const layerMemory = (memory: Memory): Layer.Layer<ChainView> => Layer.succeed(ChainView, memory.view)
