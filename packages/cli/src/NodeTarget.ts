/** The `--node` option shared by the commands that talk to a running node over its control socket. */
import { Options } from "@effect/cli"

/** `--node SOCKET|DATA_DIR`: the node's control socket, or the data directory that holds it. */
export const option = Options.text("node").pipe(
  Options.withAlias("n"),
  Options.withPseudoName("SOCKET|DATA_DIR"),
  Options.withDescription("The node's control socket, or its data directory (which holds control.sock).")
)
