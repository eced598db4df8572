// Asks a provider's own SDK whether it accepts a request, for the end-to-end preset tests:
// what tests/sdk/presets.py signed from the provider's docs must also pass the provider's SDK.
//
//   node tests/sdk/preset-sdk.mjs NAME < request.json
//
// request.json: {"secret", "body", "headers": {lower-case name: value}, "url"}.
// Prints {"sdk": "<package@version>", "valid": true|false}; exits 2 when NAME has no SDK here.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const name = process.argv[2];
const file = join(dirname(fileURLToPath(import.meta.url)), "presets", `${name}.mjs`);
if (!name || !existsSync(file)) {
  process.stderr.write(`no SDK checker for ${name}\n`);
  process.exit(2);
}
const mod = await import(file);
const request = JSON.parse(readFileSync(0, "utf8"));
const valid = await mod.verify({ ...request, method: "POST" });
process.stdout.write(JSON.stringify({ sdk: mod.sdk, valid }));
