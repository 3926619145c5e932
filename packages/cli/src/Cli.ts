/**
 * The `weft` command tree and its runner. Every failure ends as one line on stderr and exit status 1:
 * `@effect/cli` prints its own message for a bad invocation; any other error is described by
 * `CliError.describe`. Interruption (Ctrl-C) is a clean stop, exit status 0.
 */
import { Command, ValidationError } from "@effect/cli"
import { Cause, Console, Effect, Option } from "effect"
import * as Call from "./Call.js"
import { describe } from "./CliError.js"
import * as Dev from "./Dev.js"
import * as Keygen from "./Keygen.js"
import * as Msg from "./Msg.js"
import * as NodeRun from "./NodeRun.js"
import * as PubSub from "./PubSub.js"
import * as Status from "./Status.js"
import * as Token from "./Token.js"

/** The CLI's version, shown by `--version`. */
export const version = "0.1.0"

/** `weft node …`: a node's identity, running a node, and a running node's status and services. */
export const node = Command.make("node").pipe(
  Command.withDescription("Work with a node: create its identity, run it, read a running node's status, call its services."),
  Command.withSubcommands([Keygen.command, NodeRun.command, Status.command, Call.command])
)

/** The root command. */
export const weft = Command.make("weft").pipe(
  Command.withDescription("Weft: a modular, actor-based node framework for peer-to-peer networks."),
  Command.withSubcommands([Dev.command, node, PubSub.pub, PubSub.sub, Token.token, Token.ledger, Msg.msg])
)

/** Parses `argv` (as `process.argv`) and runs the command it names. */
export const cli = Command.run(weft, { name: "weft", version })

// @effect/cli has already printed why the invocation was invalid; anything else is said here, once.
const report = <E>(cause: Cause.Cause<E>): Effect.Effect<number> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
  const failure = Option.orElse(Cause.failureOption(cause), () => Cause.dieOption(cause))
  const shown = Option.match(failure, {
    onNone: () => Console.error(`weft: ${describe(Cause.pretty(cause))}`),
    onSome: (error) => (ValidationError.isValidationError(error) ? Effect.void : Console.error(`weft: ${describe(error)}`))
  })
  return Effect.as(shown, 1)
}

// @effect/cli prints a bad invocation's message through Console.error as a help document; a one-paragraph
// message is made one `weft: …` line like every other error, longer documents are left as they are.
const oneLineErrors = (console: Console.Console): Console.Console => ({
  ...console,
  error: (...args) => {
    const text = args.map(String).join(" ").trim()
    return text.includes("\n") ? console.error(text) : console.error(`weft: ${text} (try --help)`)
  }
})

/**
 * Runs the CLI on `argv` and succeeds with its exit status: 0, or 1 once the failure has been
 * reported as one line. Interruption (Ctrl-C) is passed on, for the runtime to end with status 0.
 */
export const exitStatus = (argv: ReadonlyArray<string>) =>
  Console.consoleWith((console) => Effect.withConsole(cli(argv), oneLineErrors(console))).pipe(
    Effect.as(0),
    Effect.catchAllCause(report)
  )

/** Runs the CLI on `argv`, reporting any failure as one line and setting a non-zero exit status. */
export const main = (argv: ReadonlyArray<string>) =>
  Effect.flatMap(exitStatus(argv), (status) =>
    Effect.sync(() => {
      if (status !== 0) process.exitCode = status
    }))
