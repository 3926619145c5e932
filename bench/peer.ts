/**
 * The entry point of every forked child: `peer.ts <role> <init JSON>`. Each role's module is imported
 * only in its own process, so libp2p's `Promise.withResolvers` shim and node-datachannel's native
 * threads never share a process with Weft.
 */
import { type Role, type RoleContext, runRole } from "./child.js"

type Start = (context: RoleContext) => Promise<Role>

const roles: Record<string, () => Promise<Start>> = {
  "weft-server": async () => (await import("./roles/weft.js")).server,
  "weft-client": async () => (await import("./roles/weft.js")).client,
  "libp2p-server": async () => (await import("./roles/libp2p.js")).server,
  "libp2p-client": async () => (await import("./roles/libp2p.js")).client,
  "ndc-server": async () => (await import("./roles/ndc.js")).server,
  "ndc-client": async () => (await import("./roles/ndc.js")).client,
  "rpc-session-server": async () => (await import("./roles/rpc.js")).sessionServer,
  "rpc-session-client": async () => (await import("./roles/rpc.js")).sessionClient,
  "rpc-tcp-server": async () => (await import("./roles/rpc.js")).tcpServer,
  "rpc-tcp-client": async () => (await import("./roles/rpc.js")).tcpClient
}

const [name = "", initJson = "{}"] = process.argv.slice(2)
const load = roles[name]
if (load === undefined) {
  process.stderr.write(`peer.ts: unknown role ${JSON.stringify(name)}; one of ${Object.keys(roles).join(", ")}\n`)
  process.exit(2)
}
void load().then((start) => runRole(start, JSON.parse(initJson) as Record<string, unknown>))
