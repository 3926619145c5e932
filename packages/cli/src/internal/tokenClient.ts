/**
 * The `weft token` side of the ledger RPCs: which node and which key (explicit, or the running
 * `weft dev` network's), typed calls through the node's control socket (`Control.Call` into the
 * `Ledger` service, the success decoded by the rpc's own schema), and signing on this side: the node
 * never sees a user's key.
 */
import { Options } from "@effect/cli"
import { Account, Amount, Id, LedgerError, LedgerRpc, Transaction } from "@weft/ledger"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { failureOf, successOf } from "../Call.js"
import { CliError } from "../CliError.js"
import { Control } from "./core.js"

/** `--node`: the node to talk to, by control socket or data directory (default: the running `weft dev`). */
export const nodeOption = Options.text("node").pipe(
  Options.withAlias("n"),
  Options.withPseudoName("SOCKET|DATA_DIR"),
  Options.withDescription("The node's control socket or data directory (default: the first node of the running `weft dev`)."),
  Options.optional
)

/** `--key`: an account key file (default: the dev account of the running `weft dev`); `purpose` ends the help text. */
export const keyOption = (purpose: string) =>
  Options.file("key").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription(`The account key file${purpose} (default: the dev account of the running \`weft dev\`).`),
    Options.optional
  )

/** Where `weft dev` says which node to talk to and which key the dev account has. */
export const devPointerFile = (): string => Path.join(Os.tmpdir(), "weft-dev.json")

/** What `weft dev` writes in the pointer file. */
export interface DevPointer {
  readonly node: string
  readonly key: string
}

/** Writes the pointer file (best effort: a read-only temp dir only costs the defaults). */
export const writeDevPointer = (pointer: DevPointer): void => {
  try {
    Fs.writeFileSync(devPointerFile(), JSON.stringify(pointer) + "\n", { mode: 0o600 })
  } catch {
    // The token commands then need --node and --key.
  }
}

/** Removes the pointer file if it still names `node`. */
export const clearDevPointer = (node: string): void => {
  const current = readDevPointer()
  if (current?.node === node) Fs.rmSync(devPointerFile(), { force: true })
}

const readDevPointer = (): DevPointer | undefined => {
  try {
    const value = JSON.parse(Fs.readFileSync(devPointerFile(), "utf8")) as Partial<DevPointer>
    return typeof value.node === "string" && typeof value.key === "string" ? { node: value.node, key: value.key } : undefined
  } catch {
    return undefined
  }
}

const noDev = "no --node given and no running `weft dev` found (start one with `npm start`, or pass --node DATA_DIR)"

/** The node to talk to: `--node`, else the running `weft dev` network's first node. */
export const nodeTarget = (given: Option.Option<string>): Effect.Effect<string, CliError> =>
  Option.match(given, {
    onSome: Effect.succeed,
    onNone: () => {
      const pointer = readDevPointer()
      return pointer === undefined ? Effect.fail(new CliError({ message: noDev })) : Effect.succeed(pointer.node)
    }
  })

/** The account key: `--key FILE`, else the dev account's key of the running `weft dev` network. */
export const loadKey = (given: Option.Option<string>): Effect.Effect<Account.Account, CliError> =>
  Effect.gen(function*() {
    const file = Option.getOrUndefined(given) ?? readDevPointer()?.key
    if (file === undefined) return yield* Effect.fail(new CliError({ message: "no --key given and no running `weft dev` found (pass --key FILE: an account key file)" }))
    return yield* Account.load(file).pipe(Effect.mapError((error) => new CliError({ message: `cannot load the account key ${file}: ${error.detail ?? error.reason}` })))
  })

type ControlClient = Effect.Effect.Success<ReturnType<typeof Control.client>>

/** A ledger client over a node's control socket. */
export interface Ledger {
  readonly call: <A, I>(method: string, payload: Record<string, unknown>, success: Schema.Schema<A, I>) => Effect.Effect<A, CliError>
}

const decodeLedgerError = Schema.decodeUnknownEither(LedgerError.LedgerError)

/** Opens the control client of `target` and wraps it for ledger calls. */
export const ledger = (target: string) =>
  Effect.gen(function*() {
    const client: ControlClient = yield* Control.client(target)
    const call = <A, I>(method: string, payload: Record<string, unknown>, success: Schema.Schema<A, I>) =>
      Effect.gen(function*() {
        const exit = yield* client.Call({ service: LedgerRpc.serviceName, method, payload }).pipe(
          Effect.mapError((error) => new CliError({ message: `${method}: ${"detail" in error && typeof error.detail === "string" ? error.detail : String(error)} (is this a ledger node?)` }))
        )
        const failure = failureOf(exit)
        if (failure !== undefined) return yield* Effect.fail(new CliError({ message: `${method} refused: ${describeLedgerFailure(failure)}` }))
        const value = yield* successOf(method, exit)
        return yield* Schema.decodeUnknown(success)(value).pipe(
          Effect.mapError((error) => new CliError({ message: `${method}: unexpected answer: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}` }))
        )
      })
    return { call } satisfies Ledger
  })

/** Makes `LedgerError` failures inside a Call readable: `reason: detail`. */
export const describeLedgerFailure = (value: unknown): string =>
  Either.match(decodeLedgerError(value), { onLeft: () => (typeof value === "string" ? value : JSON.stringify(value)), onRight: (error) => `${error.reason}${error.detail === undefined ? "" : `: ${error.detail}`}` })

/** The chain status. */
export const status = (client: Ledger) => client.call("LedgerStatus", {}, LedgerRpc.Status)

/** The account view. */
export const account = (client: Ledger, id: Id.Id) => client.call("Account", { account: id }, LedgerRpc.AccountView)

/** Submits a signed transaction; its id. */
export const submit = (client: Ledger, tx: Transaction.Transaction) =>
  Effect.flatMap(Either.match(Transaction.encode(tx), { onLeft: (e) => Effect.fail(new CliError({ message: e.detail ?? e.reason })), onRight: Effect.succeed }), (bytes) =>
    client.call("Submit", { tx: bytes }, Schema.String))

/** Waits until a transaction is in a block (polling), failing after `timeoutMs`. */
export const awaitIncluded = (client: Ledger, txId: string, timeoutMs = 60_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const where = yield* client.call("TxStatus", { id: txId }, LedgerRpc.TxStatus)
      if (where.state === "included") return where.height ?? 0
      if (where.state === "unknown") return yield* Effect.fail(new CliError({ message: `transaction ${txId} left the mempool without being included (it conflicted with another one); check \`weft token coins\` and retry` }))
      yield* Effect.sleep("200 millis")
    }
    return yield* Effect.fail(new CliError({ message: `transaction ${txId} is not in a block after ${timeoutMs / 1000} s (is the chain producing blocks? see \`weft token status\`)` }))
  })

/** Parses an amount (decimal tokens or 0x raw units). */
export const parseAmount = (text: string, unitsPerToken: bigint): Effect.Effect<Amount.Amount, CliError> =>
  Either.match(Amount.parse(text, unitsPerToken), { onLeft: (e) => Effect.fail(new CliError({ message: e.detail ?? e.reason })), onRight: Effect.succeed })

/** Parses a 32-byte id (`0x…`). */
export const parseId = (what: string, text: string): Effect.Effect<Id.Id, CliError> =>
  Either.match(Id.parse(text), { onLeft: () => Effect.fail(new CliError({ message: `${what} is not a 0x… id of 64 hex digits: ${JSON.stringify(text.slice(0, 80))}` })), onRight: Effect.succeed })

/** Lifts a ledger Either into a CliError. */
export const orFail = <A>(result: Either.Either<A, LedgerError.LedgerError>): Effect.Effect<A, CliError> =>
  Either.match(result, { onLeft: (e) => Effect.fail(new CliError({ message: `${e.reason}${e.detail === undefined ? "" : `: ${e.detail}`}` })), onRight: Effect.succeed })
