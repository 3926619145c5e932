/**
 * `weft token …` and `weft ledger reindex`: the ledger from the command line, through a running
 * node's control socket. Transactions are built and signed here with the account key file (`--key`,
 * default: the dev account of the running `weft dev`); the node only checks, gossips and includes
 * them. Each command that sends a transaction waits until it is in a block, then prints what it made
 * in the style `25.0 WEFT (Coin 0x…)`; `--json` prints one JSON object per line instead.
 *
 * `balance` and `coins` read the node's head state (what the next block builds on); the explorer index
 * (`weft ledger reindex`) holds finalized blocks only.
 */
import { Args, Command, Options } from "@effect/cli"
import { Canonical } from "@weft/core"
import { type Account, Display, Id, LedgerRpc, type Params, Transaction } from "@weft/ledger"
import { Console, Effect, Either, Option, Schema } from "effect"
import { CliError } from "./CliError.js"
import * as Json from "./Json.js"
import * as Client from "./internal/tokenClient.js"
import * as Plan from "./internal/tokenPlan.js"

const node = Client.nodeOption
const key = Client.keyOption(" that signs")
const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object per line."))
const common = { node, key, json }

type Common = { readonly node: Option.Option<string>; readonly key: Option.Option<string>; readonly json: boolean }

interface Session {
  readonly client: Client.Ledger
  readonly account: Account.Account
  readonly params: Params.Params
  readonly view: typeof LedgerRpc.AccountView.Type
  readonly json: boolean
}

const paramsOf = (status: typeof LedgerRpc.Status.Type): Params.Params => ({
  chainId: status.chainId,
  symbol: status.symbol,
  unitsPerToken: status.unitsPerToken,
  blockTimeMs: status.blockTimeMs,
  initialRewardUnits: 0n as never,
  halvingIntervalBlocks: 1
})

/** Opens the node, loads the key, and reads the chain and the account. */
const session = (args: Common) =>
  Effect.gen(function*() {
    const client = yield* Client.ledger(yield* Client.nodeTarget(args.node))
    const account = yield* Client.loadKey(args.key)
    const params = paramsOf(yield* Client.status(client))
    const view = yield* Client.account(client, account.id)
    return { client, account, params, view, json: args.json } satisfies Session
  })

const run = <A>(args: Common, body: (session: Session) => Effect.Effect<A, CliError>) =>
  Effect.scoped(Effect.flatMap(session(args), body))

const out = (s: Session, human: string, machine: Record<string, unknown>) => Console.log(s.json ? Json.line(machine) : human)

const amountText = (s: Session, units: bigint) => Display.coin(units as never, "0".repeat(64) as Id.Id, s.params).split(" (")[0]!

/** Submits transactions in order and waits for the last to be in a block; returns their ids and the height. */
const send = (s: Session, txs: ReadonlyArray<Transaction.Transaction>) =>
  Effect.gen(function*() {
    const ids: Array<string> = []
    for (const tx of txs) ids.push(yield* Client.submit(s.client, tx))
    const height = yield* Client.awaitIncluded(s.client, ids[ids.length - 1]!)
    return { ids, height }
  })

const signOne = (s: Session, body: Transaction.Body) => Effect.flatMap(Plan.sign(body, s.account), (tx) => Effect.map(send(s, [tx]), (sent) => ({ ...sent, txId: Plan.idOf(tx) })))

// ---------------------------------------------------------------------------------------------------

const balance = Command.make("balance", common, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const { view } = s
      yield* out(s, Display.account(view.spendable as never, s.account.id, s.params), {
        account: view.account, spendable: view.spendable, incoming: view.incoming, unclaimed: view.unclaimed, height: view.height,
        pending: view.pendingIn.map((p) => ({ id: p.id, amount: p.amount }))
      })
      if (s.json) return
      for (const pending of view.pendingIn) yield* Console.log(Display.pending(pending.amount as never, Id.parse(pending.id).pipe(Either.getOrThrow), s.params))
      if (view.unclaimed > 0n) yield* Console.log(`${amountText(s, view.unclaimed)} unclaimed block rewards (an authority node claims them on its own unless its ledger config says "autoClaim": false; or now: \`weft token mint all\`)`)
    }))
).pipe(Command.withDescription("The account's spendable balance, its incoming pending transactions and unclaimed rewards."))

const coins = Command.make("coins", common, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      for (const coin of s.view.coins) yield* out(s, Display.coin(coin.amount as never, Id.parse(coin.id).pipe(Either.getOrThrow), s.params), { coin: coin.id, amount: coin.amount })
      if (s.view.coins.length === 0 && !s.json) yield* Console.log(`no coins (Account ${s.view.account})`)
    }))
).pipe(Command.withDescription("The account's unlocked coins, largest first."))

const transferArgs = Args.text({ name: "to [refund] amount|coin" }).pipe(Args.between(2, 3))

const transferBody = (s: Session, recipient: Id.Id, refund: Id.Id | undefined, value: string) =>
  Effect.gen(function*() {
    const asCoin = Either.getRight(Id.parse(value)).pipe(Option.filter((id) => Plan.ownCoin(s.view, id) !== undefined))
    const extra = refund === undefined ? {} : { refund: Id.toBytes(refund) }
    if (Option.isSome(asCoin)) {
      const body: Transaction.Body = { _tag: "TransferCoin", ...Plan.base(s.params, s.account, s.view), coin: Id.toBytes(asCoin.value), recipient: Id.toBytes(recipient), ...extra }
      return { bodies: [body], amount: Plan.ownCoin(s.view, asCoin.value)!.amount }
    }
    const amount = yield* Client.parseAmount(value, s.params.unitsPerToken)
    const request = refund === undefined ? { amount, recipient } : { amount, recipient, refund }
    const bodies = yield* Client.orFail(Plan.Wallet.planTransfer(Plan.stateOf(s.view, s.account.id), s.account.id, request, s.params))
    return { bodies, amount: amount as bigint }
  })

const transfer = Command.make("transfer", { ...common, values: transferArgs }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const [to, middle, last] = args.values
      const recipient = yield* Client.parseId("<to>", to!)
      const refund = last === undefined ? undefined : yield* Client.parseId("<refund>", middle!)
      const plan = yield* transferBody(s, recipient, refund, last ?? middle!)
      const txs = yield* Effect.forEach(plan.bodies, (body) => Plan.sign(body, s.account))
      const sent = yield* send(s, txs)
      const pending = Id.pending(Plan.idOf(txs[txs.length - 1]!))
      yield* out(s, Display.pending(plan.amount as never, pending, s.params), { pending: Id.display(pending), amount: plan.amount, to: Id.display(recipient), height: sent.height, transactions: sent.ids })
    }))
).pipe(Command.withDescription("Send an amount (12.5 or 0x1DCD65000) or a whole coin to an account, as a pending transaction it may accept or reject; refund defaults to you."))

const pendingArg = Args.text({ name: "pending" }).pipe(Args.withDescription("The pending transaction id (0x…)."))

const acceptOrReject = (kind: "Accept" | "Reject") => (args: Common & { readonly pending: string }) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const pendingId = yield* Client.parseId("<pending>", args.pending)
      const offered = s.view.pendingIn.find((p) => p.id === Id.display(pendingId))
      if (offered === undefined) return yield* Effect.fail(new CliError({ message: `no pending transaction ${Id.display(pendingId)} for Account ${s.view.account} (see \`weft token balance\`)` }))
      const sent = yield* signOne(s, { _tag: kind, ...Plan.base(s.params, s.account, s.view), pending: Id.toBytes(pendingId) })
      const coin = yield* coinOfPending(s, offered.id)
      if (kind === "Accept") yield* out(s, Display.coin(offered.amount as never, coin, s.params), { coin: Id.display(coin), amount: offered.amount, height: sent.height })
      else {
        const back = Id.pending(sent.txId)
        yield* out(s, Display.pending(offered.amount as never, back, s.params), { pending: Id.display(back), amount: offered.amount, to: offered.refund, height: sent.height })
      }
    }))

// The coin a pending transaction held: after an accept it is the recipient's under the same id.
const coinOfPending = (s: Session, pending: string) =>
  Effect.map(Client.account(s.client, s.account.id), (view) => {
    const before = s.view.coins.map((c) => c.id)
    const fresh = view.coins.find((c) => !before.includes(c.id))
    return Id.parse(fresh?.id ?? pending).pipe(Either.getOrThrow)
  })

const accept = Command.make("accept", { ...common, pending: pendingArg }, acceptOrReject("Accept")).pipe(
  Command.withDescription("Accept a pending transaction addressed to you: its coin becomes yours.")
)
const reject = Command.make("reject", { ...common, pending: pendingArg }, acceptOrReject("Reject")).pipe(
  Command.withDescription("Reject a pending transaction addressed to you: it goes back to its refund account.")
)

const split = Command.make("split", { ...common, coin: Args.text({ name: "coin" }), left: Args.text({ name: "left" }), right: Args.text({ name: "right" }) }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const coin = yield* Client.parseId("<coin>", args.coin)
      const left = yield* Client.parseAmount(args.left, s.params.unitsPerToken)
      const right = yield* Client.parseAmount(args.right, s.params.unitsPerToken)
      const sent = yield* signOne(s, { _tag: "Split", ...Plan.base(s.params, s.account, s.view), coin: Id.toBytes(coin), amounts: [left, right] })
      for (const [index, amount] of [left, right].entries()) {
        const made = Id.coin(sent.txId, index)
        yield* out(s, Display.coin(amount, made, s.params), { coin: Id.display(made), amount, height: sent.height })
      }
    }))
).pipe(Command.withDescription("Split one of your coins into two that sum to it."))

const merge = Command.make("merge", { ...common, coins: Args.text({ name: "coin" }).pipe(Args.atLeast(2)) }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const ids = yield* Effect.forEach(args.coins, (text) => Client.parseId("<coin>", text))
      const total = ids.reduce((sum, id) => sum + (Plan.ownCoin(s.view, id)?.amount ?? 0n), 0n)
      const sent = yield* signOne(s, { _tag: "Merge", ...Plan.base(s.params, s.account, s.view), coins: ids.map(Id.toBytes) })
      const made = Id.coin(sent.txId, 0)
      yield* out(s, Display.coin(total as never, made, s.params), { coin: Id.display(made), amount: total, height: sent.height })
    }))
).pipe(Command.withDescription("Merge two (or more) of your coins into one."))

const mint = Command.make("mint", { ...common, all: Args.choice([["all", "all" as const]], { name: "all" }) }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const body = yield* Client.orFail(Plan.Wallet.planClaim(Plan.stateOf(s.view, s.account.id), s.account.id, s.params))
      const into = body._tag === "Mint" && body.into !== undefined ? Plan.ownCoin(s.view, Id.fromBytes(body.into))?.amount ?? 0n : 0n
      const sent = yield* signOne(s, body)
      const made = Id.coin(sent.txId, 0)
      const view = yield* Client.account(s.client, s.account.id)
      const amount = view.coins.find((c) => c.id === Id.display(made))?.amount ?? s.view.unclaimed + into
      yield* out(s, Display.coin(amount as never, made, s.params), { coin: Id.display(made), amount, height: sent.height })
    }))
).pipe(Command.withDescription("Claim every block reward accrued to the account into one coin (`mint all`); an authority node does it on its own unless its ledger config says \"autoClaim\": false."))

const keysRegister = Command.make("register", common, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const kem = Plan.kemKeys(s.account)
      const sent = yield* signOne(s, { _tag: "RegisterKeys", ...Plan.base(s.params, s.account, s.view), kem: kem.publicKey })
      const fingerprint = Id.fromBytes(Canonical.digest(kem.publicKey))
      yield* out(s, `registered ML-KEM-768 key ${Id.display(fingerprint).slice(0, 18)}… (Account ${s.view.account})`, { account: s.view.account, kem: Id.display(fingerprint), height: sent.height })
    }))
).pipe(Command.withDescription("Publish the account's ML-KEM-768 key (derived from its key file) on the chain, as a public-key directory entry."))

const keys = Command.make("keys").pipe(Command.withSubcommands([keysRegister]), Command.withDescription("The account's lattice keys on the chain."))

const waitForOffer = (s: Session, rendezvous: Id.Id) =>
  Effect.gen(function*() {
    while (true) {
      const offered = yield* s.client.call("OfferFor", { rendezvous: Id.display(rendezvous), waitMs: LedgerRpc.offerWaitMsMax }, Schema.NullOr(Schema.Uint8ArrayFromSelf))
      if (offered !== null) return offered
    }
  })

const decodeOffer = (bytes: Uint8Array) =>
  Either.match(Either.flatMap(Canonical.decode(bytes, 64 * 1024), Schema.decodeUnknownEither(Transaction.Transaction)), {
    onLeft: () => Effect.fail(new CliError({ message: "the node handed over an offer that does not decode" })),
    onRight: Effect.succeed
  })

const mutualReceive = Command.make("mutual-receive", { ...common, amount: Args.text({ name: "amount" }) }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const amount = yield* Client.parseAmount(args.amount, s.params.unitsPerToken)
      const secret = Plan.secret()
      const sent = yield* signOne(s, { _tag: "Rendezvous", ...Plan.base(s.params, s.account, s.view), amount, commitment: Id.toBytes(Id.commitment(secret)) })
      const rendezvous = Id.rendezvous(sent.txId)
      yield* out(s, `rendezvous ${Id.display(rendezvous)} for ${amountText(s, amount)}; the sender runs: weft token mutual-transfer ${Id.display(rendezvous)} ${args.amount}\nwaiting for the sender…`, { event: "rendezvous", rendezvous: Id.display(rendezvous), amount })
      const offer = yield* Effect.flatMap(waitForOffer(s, rendezvous), decodeOffer)
      const revealed = yield* Client.orFail(Transaction.reveal(offer, s.account, secret))
      const done = yield* send(s, [revealed])
      const coin = Id.mutualCoin(rendezvous, secret)
      yield* out(s, Display.coin(amount, coin, s.params), { event: "received", coin: Id.display(coin), amount, height: done.height })
    }))
).pipe(Command.withDescription("Publish a rendezvous for <amount>, print it, and wait for a sender to pay it; the coin lands in one step."))

// How long the sender waits for the receiver to reveal its secret and complete the transfer.
const mutualWaitMs = 120_000

/** Waits until the rendezvous is completed (gone from the head), failing after `timeoutMs`. */
const awaitCompleted = (s: Session, rendezvous: Id.Id, timeoutMs: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const open = yield* s.client.call("Rendezvous", { id: Id.display(rendezvous) }, Schema.NullOr(LedgerRpc.RendezvousView))
      if (open === null) return
      yield* Effect.sleep("300 millis")
    }
    return yield* Effect.fail(new CliError({ message: `the receiver did not complete the transfer within ${timeoutMs / 1000} s (it must be running \`weft token mutual-receive\`); your coins stay yours until it does` }))
  })

const mutualTransfer = Command.make("mutual-transfer", { ...common, rendezvous: Args.text({ name: "rendezvous" }), value: Args.text({ name: "amount|coin" }) }, (args) =>
  run(args, (s) =>
    Effect.gen(function*() {
      const rendezvous = yield* Client.parseId("<rendezvous>", args.rendezvous)
      const target = yield* s.client.call("Rendezvous", { id: Id.display(rendezvous) }, Schema.NullOr(LedgerRpc.RendezvousView))
      if (target === null) return yield* Effect.fail(new CliError({ message: `no open rendezvous ${Id.display(rendezvous)} (completed already, or not in a block yet)` }))
      const asCoin = Either.getRight(Id.parse(args.value)).pipe(Option.flatMap((id) => Option.fromNullable(Plan.ownCoin(s.view, id))))
      if (Option.isNone(asCoin)) {
        const amount = yield* Client.parseAmount(args.value, s.params.unitsPerToken)
        if (amount !== target.amount) return yield* Effect.fail(new CliError({ message: `the rendezvous expects ${amountText(s, target.amount)}, not ${amountText(s, amount)}` }))
      }
      const inputs = Option.match(asCoin, { onSome: (coin) => [coin], onNone: () => Plan.selectCoins(s.view, target.amount, 16) })
      const total = (inputs ?? []).reduce((sum, coin) => sum + coin.amount, 0n)
      if (inputs === undefined || total < target.amount) return yield* Effect.fail(new CliError({ message: `not enough to pay ${amountText(s, target.amount)}` }))
      const body: Transaction.Body = {
        _tag: "MutualTransfer", ...Plan.base(s.params, s.account, s.view), rendezvous: Id.toBytes(rendezvous),
        inputs: inputs.map((coin) => Id.toBytes(Either.getOrThrow(Id.parse(coin.id)))), amount: target.amount, change: total - target.amount
      }
      const tx = yield* Plan.sign(body, s.account)
      yield* s.client.call("Offer", { tx: Either.getOrThrow(Transaction.encode(tx)) }, Schema.String)
      yield* awaitCompleted(s, rendezvous, mutualWaitMs)
      yield* out(s, Display.privateCoin(target.amount as never, s.params), { event: "sent", amount: target.amount, rendezvous: Id.display(rendezvous), to: target.receiver })
    }))
).pipe(Command.withDescription("Pay a rendezvous printed by `weft token mutual-receive`; you see the amount, not the receiver's coin."))

const status = Command.make("status", { node, json }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Client.ledger(yield* Client.nodeTarget(args.node))
    const st = yield* Client.status(client)
    yield* Console.log(args.json ? Json.line(st) : `chain ${st.chainId}: height ${st.height} (finalized ${st.finalizedHeight}), head ${st.head.slice(0, 18)}…, ${st.mempoolTransactions} transactions waiting`)
  }))
).pipe(Command.withDescription("The node's view of the chain: height, finalized height, mempool."))

/** `weft token …`. */
export const token = Command.make("token").pipe(
  Command.withDescription("Coins, transfers and keys on the ledger, through a running node (default: the running `weft dev`)."),
  Command.withSubcommands([balance, coins, transfer, accept, reject, mutualReceive, mutualTransfer, split, merge, mint, keys, status])
)

const reindex = Command.make("reindex", { node, json }, (args) =>
  Effect.scoped(Effect.gen(function*() {
    const client = yield* Client.ledger(yield* Client.nodeTarget(args.node))
    const result = yield* client.call("Reindex", {}, Schema.Struct({ blocks: Schema.Number, digest: Schema.String, before: Schema.String }))
    yield* Console.log(args.json
      ? Json.line(result)
      : `reindexed ${result.blocks} blocks; index digest ${result.digest} (${result.digest === result.before ? "identical to the index before" : `DIFFERENT from the index before, ${result.before}`})`)
  }))
).pipe(Command.withDescription("Rebuild the explorer index (balances and history over the finalized blocks) from the stored blocks and print its digest (equal before and after for a sound index)."))

/** `weft ledger …`. */
export const ledger = Command.make("ledger").pipe(
  Command.withDescription("The node's ledger store and explorer index."),
  Command.withSubcommands([reindex])
)
