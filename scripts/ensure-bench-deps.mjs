// Installs the comparison bench's own dependencies (bench/: js-libp2p, node-datachannel) before
// `npm run bench:compare`. bench/ is a separate npm package, not a workspace, so none of this reaches
// the packages. `npm install` (not `npm ci`), as in ensure-deps.mjs; with the committed lockfile it
// leaves the lockfile unchanged. node-datachannel's binary comes prebuilt in a platform package, so
// no install script has to run.
import { existsSync, statSync } from "node:fs"
import { execSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const bench = fileURLToPath(new URL("../bench/", import.meta.url))
const marker = `${bench}node_modules/.package-lock.json`
const stale = !existsSync(marker) || statSync(marker).mtimeMs < statSync(`${bench}package-lock.json`).mtimeMs
if (stale) {
  console.error("weft: installing the comparison bench's dependencies (npm install in bench/)…")
  execSync("npm install --no-audit --no-fund --loglevel=error", { cwd: bench, stdio: "inherit" })
}
