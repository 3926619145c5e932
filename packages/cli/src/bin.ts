#!/usr/bin/env -S node --import tsx
/**
 * The `weft` executable: `tsx packages/cli/src/bin.ts …` or `npm run weft -- …`.
 * Logs go to stderr so that stdout carries only the command's output (and only JSON with `--json`).
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Logger } from "effect"
import { main } from "./Cli.js"

const logToStderr = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

main(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Effect.provide(logToStderr),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
