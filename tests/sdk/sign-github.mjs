#!/usr/bin/env node
// Sign a webhook body as GitHub does, with Octokit's @octokit/webhooks-methods.
//
// For Hookyard's end-to-end tests, like sign.py beside it (GitHub has no
// Python SDK). Install with `npm ci --prefix tests/sdk`.
//
//   node tests/sdk/sign-github.mjs [github] --secret S --body-file F [--url U] [--timestamp T] [--id ID]
//
// Prints {"headers": {"X-Hub-Signature-256": "sha256=..."}}. GitHub signs no
// URL, timestamp or id: those options are accepted for the same CLI and ignored.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { sign } from "@octokit/webhooks-methods";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    secret: { type: "string" },
    "body-file": { type: "string" },
    url: { type: "string" },
    timestamp: { type: "string" },
    id: { type: "string" },
  },
});
if (positionals.some((p) => p !== "github") || !values.secret || !values["body-file"]) {
  console.error("usage: sign-github.mjs [github] --secret S --body-file F");
  process.exit(2);
}
const body = readFileSync(values["body-file"], "utf8"); // the SDK signs a string
const signature = await sign(values.secret, body);
console.log(JSON.stringify({ headers: { "X-Hub-Signature-256": signature } }));
