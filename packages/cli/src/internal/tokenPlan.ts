/**
 * Building `weft token` transactions on the client: a partial ledger state made from the node's view
 * of one account (its coins, next nonce and unclaimed rewards) is enough for the pure `Wallet`
 * planners, and every body is signed here with the account's key.
 */
import { type Account, Amount, Id, type LedgerRpc, type Params, State, Transaction, Wallet } from "@weft/ledger"
import { Effect, Either, HashMap } from "effect"
import { createHash } from "node:crypto"
import { ml_kem768 } from "@noble/post-quantum/ml-kem.js"
import type { CliError } from "../CliError.js"
import { orFail } from "./tokenClient.js"

type View = typeof LedgerRpc.AccountView.Type

/** The account's part of the ledger state, as the wallet planners read it. */
export const stateOf = (view: View, account: Id.Id): State.State => ({
  ...State.empty,
  coins: HashMap.fromIterable(view.coins.map((coin) => [Id.parse(coin.id).pipe(Either.getOrThrow), { owner: account, amount: coin.amount as Amount.Amount }] as const)),
  nonces: HashMap.make([account, view.nextNonce - 1]),
  unclaimed: view.unclaimed === 0n ? HashMap.empty() : HashMap.make([account, view.unclaimed as Amount.Amount])
})

/** Common fields of a body signed by `account` with the view's next nonce. */
export const base = (params: Params.Params, account: Account.Account, view: View) => ({
  chain: params.chainId,
  from: Id.toBytes(account.id),
  nonce: view.nextNonce
})

/** Signs one body. */
export const sign = (body: Transaction.Body, account: Account.Account): Effect.Effect<Transaction.Transaction, CliError> =>
  orFail(Transaction.sign(body, account))

/** A transaction's id. */
export const idOf = (tx: Transaction.Transaction): Id.Id => Either.getOrThrow(Transaction.id(tx.body))

/** The coin of the account with this id, or a CliError naming it. */
export const ownCoin = (view: View, coin: Id.Id) => view.coins.find((held) => held.id === Id.display(coin))

/** Coins covering `amount`, largest first (the view lists them so); at most `max` of them. */
export const selectCoins = (view: View, amount: bigint, max: number): ReadonlyArray<{ readonly id: string; readonly amount: bigint }> | undefined => {
  const chosen: Array<{ readonly id: string; readonly amount: bigint }> = []
  let sum = 0n
  for (const coin of view.coins) {
    if (sum >= amount || chosen.length >= max) break
    chosen.push(coin)
    sum += coin.amount
  }
  return sum >= amount ? chosen : undefined
}

/** The account's ML-KEM-768 key pair, derived from its ML-DSA secret key (so the key file is the only secret to keep). */
export const kemKeys = (account: Account.Account) => {
  const seed = createHash("sha512").update("weft/ledger/kem/v1").update(account.secretKey).digest()
  return ml_kem768.keygen(new Uint8Array(seed))
}

/** A fresh 32-byte rendezvous secret. */
export const secret = (): Uint8Array => new Uint8Array(createHash("sha256").update(crypto.getRandomValues(new Uint8Array(32))).digest())

export { Wallet }
