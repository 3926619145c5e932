/**
 * @weft/ledger — the ledger's pure core: amounts, accounts, transactions, state, wallet helpers.
 * Every module is a namespace: `import { Amount, State, Transaction } from "@weft/ledger"`.
 */
export * as Account from "./Account.js"
export * as Amount from "./Amount.js"
export * as Diff from "./Diff.js"
export * as Display from "./Display.js"
export * as Id from "./Id.js"
export * as LedgerError from "./LedgerError.js"
export * as LedgerLimits from "./LedgerLimits.js"
export * as Params from "./Params.js"
export * as Records from "./Records.js"
export * as State from "./State.js"
export * as Transaction from "./Transaction.js"
export * as Wallet from "./Wallet.js"
