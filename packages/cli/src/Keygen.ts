/**
 * `weft node keygen`: creates a node identity (an ML-DSA-65 key pair) in a key file readable only by
 * its owner. It never replaces a file: a key file is a node's name, and overwriting one by accident
 * loses that name for good.
 */
import { Command, Options } from "@effect/cli"
import { Identity } from "./internal/core.js"
import { Console, Effect } from "effect"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { CliError } from "./CliError.js"
import * as Json from "./Json.js"

const code = (cause: unknown): unknown => (cause as { readonly code?: unknown } | null)?.code

const failure = (file: string, cause: unknown): CliError =>
  code(cause) === "EEXIST"
    ? new CliError({ message: `${file} already exists; refusing to overwrite a key file (pass --out with a new path, or remove it first)` })
    : new CliError({ message: `cannot write ${file}: ${cause instanceof Error ? cause.message : String(cause)}` })

/**
 * Writes `text` to `file` with mode 0600 unless `file` exists. The text goes to a private temp file
 * first and is then hard-linked into place, so the key file appears whole or not at all, and a file
 * created meanwhile by someone else is never replaced (link fails with EEXIST).
 */
export const writeNew = (file: string, text: string): Effect.Effect<void, CliError> =>
  Effect.tryPromise({
    try: async () => {
      await Fs.mkdir(Path.dirname(file), { recursive: true, mode: 0o700 })
      const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`
      try {
        const handle = await Fs.open(temp, "wx", 0o600)
        try {
          await handle.writeFile(text)
          await handle.sync()
        } finally {
          await handle.close()
        }
        await Fs.link(temp, file)
      } finally {
        await Fs.rm(temp, { force: true })
      }
    },
    catch: (cause) => failure(file, cause)
  })

const out = Options.file("out").pipe(
  Options.withAlias("o"),
  Options.withDefault("./identity.json"),
  Options.withDescription("Where to write the key file (mode 0600). Never overwritten.")
)

const json = Options.boolean("json").pipe(Options.withDescription("Print one JSON object instead of text."))

/** The `keygen` subcommand. */
export const command = Command.make("keygen", { out, json }, ({ json, out }) =>
  Effect.gen(function*() {
    const file = Path.resolve(out)
    const identity = Identity.generate()
    yield* writeNew(file, Identity.toKeyFile(identity))
    yield* json
      ? Console.log(Json.line({ id: identity.id, file, algorithm: "ML-DSA-65" }))
      : Console.log(`node ID   ${identity.id}\nkey file  ${file} (mode 0600, keep it secret)`)
  })
).pipe(Command.withDescription(
  "Generate a node identity (ML-DSA-65 key pair) and write its key file; a node uses <dataDir>/identity.json."
))
