/**
 * @weft/ledger — the ledger: amounts, accounts, transactions, state and wallet helpers as pure values;
 * blocks and proof-of-authority consensus; the lmdb ledger store and explorer index; the node service
 * (`LedgerNode`) and its control RPCs (`LedgerRpc`). See the package README. Every module is a namespace: `import { Amount, State, Transaction } from "@weft/ledger"`.
 */
export * as Account from "./Account.js"
export * as Amount from "./Amount.js"
export * as Block from "./Block.js"
export * as Consensus from "./Consensus.js"
export * as Diff from "./Diff.js"
export * as Display from "./Display.js"
export * as Explorer from "./Explorer.js"
export * as Id from "./Id.js"
export * as LedgerError from "./LedgerError.js"
export * as LedgerLimits from "./LedgerLimits.js"
export * as LedgerNode from "./LedgerNode.js"
export * as LedgerRpc from "./LedgerRpc.js"
export * as LedgerStore from "./LedgerStore.js"
export * as Mempool from "./Mempool.js"
export * as Params from "./Params.js"
export * as Records from "./Records.js"
export * as State from "./State.js"
export * as Transaction from "./Transaction.js"
export * as Wallet from "./Wallet.js"
