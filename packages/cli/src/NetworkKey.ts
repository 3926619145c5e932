/**
 * The network key: the 32-byte pre-shared key that gates a Weft network (nodes without it get no
 * reply). It lives in a file of 64 hex characters, mode 0600 — by default `network.key` in the node's
 * data directory. A node without one runs the unencrypted `LinkPlain` and logs a warning.
 */
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import { randomBytes } from "node:crypto"
import * as Path from "node:path"
import { CliError } from "./CliError.js"

/** The file name of the network key inside a data directory. */
export const fileName = "network.key"

const keyBytes = 32

/** Reads a network key file. */
export const load = (file: string): Effect.Effect<Uint8Array, CliError> =>
  Effect.try({
    try: () => Fs.readFileSync(file, "utf8").trim(),
    catch: (cause) => new CliError({ message: `cannot read the network key ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })
  }).pipe(
    Effect.filterOrFail(
      (text) => new RegExp(`^[0-9a-f]{${keyBytes * 2}}$`).test(text),
      () => new CliError({ message: `${file}: a network key is ${keyBytes * 2} lowercase hex characters (${keyBytes} bytes)` })
    ),
    Effect.map((text) => new Uint8Array(Buffer.from(text, "hex")))
  )

/** The key a node uses: the given file, else `<dataDir>/network.key` if it exists, else none. */
export const forNode = (dataDir: string, given: Option.Option<string>): Effect.Effect<Option.Option<Uint8Array>, CliError> => {
  const file = Option.getOrElse(given, () => Path.join(dataDir, fileName))
  return Option.isNone(given) && !Fs.existsSync(file) ? Effect.succeedNone : Effect.asSome(load(file))
}

/** A fresh key as its file text. */
export const generate = (): string => `${randomBytes(keyBytes).toString("hex")}\n`

/** Writes `text` to `<dataDir>/network.key` (mode 0600) unless the node already has a key. */
export const install = (dataDir: string, text: string): Effect.Effect<void, CliError> =>
  Effect.try({
    try: () => {
      Fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 })
      Fs.writeFileSync(Path.join(dataDir, fileName), text, { mode: 0o600, flag: "wx" })
    },
    catch: (cause) => cause
  }).pipe(
    Effect.catchAll((cause) =>
      (cause as NodeJS.ErrnoException).code === "EEXIST"
        ? Effect.void
        : Effect.fail(new CliError({ message: `cannot write the network key in ${dataDir}: ${String(cause)}` }))
    )
  )
