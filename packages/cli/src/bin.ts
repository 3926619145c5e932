#!/usr/bin/env -S node --import tsx
/**
 * The `weft` executable: `tsx packages/cli/src/bin.ts …` or `npm run weft -- …`.
 * Logs go to stderr so that stdout carries only the command's output (and only JSON with `--json`).
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Logger } from "effect"
import { main } from "./Cli.js"

const logToStderr = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

// The runtime stops the command on the first SIGINT or SIGTERM and then stops listening. Under
// `npm run`/`npm start` one Ctrl-C arrives twice (the terminal and npm both signal tsx, which relays),
// and tsx ends a process that has no listener left at once, before its finalizers have stopped node
// processes and removed sockets. This listener stays until the command has finished.
const ignoreRepeatedSignals = Effect.acquireRelease(
  Effect.sync(() => {
    const ignore = () => {}
    process.on("SIGINT", ignore).on("SIGTERM", ignore)
    return ignore
  }),
  (ignore) => Effect.sync(() => process.off("SIGINT", ignore).off("SIGTERM", ignore))
)

Effect.zipRight(ignoreRepeatedSignals, main(process.argv)).pipe(
  Effect.scoped,
  Effect.provide(NodeContext.layer),
  Effect.provide(logToStderr),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
