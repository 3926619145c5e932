// Installs dependencies on a fresh clone before `npm start` / `npm test`.
// `npm install` (not `npm ci`): the registry mirror lacks some other-platform optional binaries that
// `npm ci` insists on (see shared notes); `npm install` with the committed lockfile leaves it unchanged.
import { existsSync, statSync } from "node:fs"
import { execSync } from "node:child_process"

const marker = "node_modules/.package-lock.json"
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync("package-lock.json").mtimeMs
if (stale) {
  console.error("weft: installing dependencies (npm install)…")
  execSync("npm install --no-audit --no-fund --loglevel=error", { stdio: "inherit" })
}
