/**
 * @weft/cli — the `weft` command. `bin.ts` runs it; the modules are exported for embedding the
 * commands in another tool and for tests.
 */
export * as Cli from "./Cli.js"
export * as CliError from "./CliError.js"
export * as DevNetwork from "./DevNetwork.js"
export * as DevPing from "./DevPing.js"
export * as DurationText from "./DurationText.js"
export * as NodeConfig from "./NodeConfig.js"
export * as NodeRun from "./NodeRun.js"
