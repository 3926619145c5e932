/**
 * The ledger of a `weft dev` network: every node is an authority (its key in `<node>/authority.json`),
 * one funded dev account (`<data>/dev-account.json`), one genesis (`<data>/genesis.json`, 2 s blocks),
 * and a `ledger` section in each node's `node.json`. Files that exist are kept, so a network run again
 * on the same `--data` continues its chain.
 */
import { Account, Amount, LedgerNode, Params } from "@weft/ledger"
import { Effect, Either } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { CliError } from "../CliError.js"

/** The dev chain's block time. */
export const blockTimeMs = 2000

/** Tokens the dev account starts with. */
export const devTokens = 1000n

/** What a prepared dev ledger is. */
export interface DevLedger {
  readonly account: Account.Account
  readonly keyFile: string
  readonly genesisFile: string
}

const attempt = <A>(what: string, run: () => A) =>
  Effect.try({ try: run, catch: (cause) => new CliError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` }) })

const keyAt = (file: string) =>
  Fs.existsSync(file)
    ? Account.load(file).pipe(Effect.mapError((e) => new CliError({ message: `${file}: ${e.detail ?? e.reason}` })))
    : Effect.flatMap(Effect.sync(() => Account.generate()), (account) =>
      Effect.as(Account.save(file, account).pipe(Effect.mapError((e) => new CliError({ message: `${file}: ${e.detail ?? e.reason}` }))), account))

const genesisJson = (dev: Account.Account, authorities: ReadonlyArray<Account.Account>) => {
  const params = Either.getOrThrow(Params.make({ chainId: "weft-dev", blockTimeMs }))
  return LedgerNode.genesisToJson({
    params,
    allocations: [{ owner: dev.id, amount: (devTokens * params.unitsPerToken) as Amount.Amount }],
    authorities: authorities.map((a) => ({ id: a.id, publicKey: a.publicKey })),
    timeMs: Date.now()
  })
}

const addLedgerSection = (nodeDir: string, genesisFile: string) =>
  attempt(`cannot write ${Path.join(nodeDir, "node.json")}`, () => {
    const file = Path.join(nodeDir, "node.json")
    const config = Fs.existsSync(file) ? (JSON.parse(Fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {}
    if (config["ledger"] !== undefined) return
    config["ledger"] = { genesis: Path.relative(nodeDir, genesisFile), authorityKey: "authority.json" }
    Fs.writeFileSync(file, JSON.stringify(config, null, 2) + "\n")
  })

/** Writes (or keeps) the dev ledger's keys, genesis and node configs for the given node directories. */
export const prepare = (dataDir: string, nodeDirs: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    for (const dir of nodeDirs) yield* attempt(`cannot create ${dir}`, () => Fs.mkdirSync(dir, { recursive: true, mode: 0o700 }))
    const keyFile = Path.join(dataDir, "dev-account.json")
    const account = yield* keyAt(keyFile)
    const authorities = yield* Effect.forEach(nodeDirs, (dir) => keyAt(Path.join(dir, "authority.json")))
    const genesisFile = Path.join(dataDir, "genesis.json")
    if (!Fs.existsSync(genesisFile)) yield* attempt(`cannot write ${genesisFile}`, () => Fs.writeFileSync(genesisFile, genesisJson(account, authorities)))
    yield* Effect.forEach(nodeDirs, (dir) => addLedgerSection(dir, genesisFile), { discard: true })
    return { account, keyFile, genesisFile } satisfies DevLedger
  })
