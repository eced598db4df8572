// presets/paddle.mjs — Paddle Billing webhook signature via @paddle/paddle-node-sdk.
// Paddle-Signature: ts=<unix s>;h1=<hex HMAC-SHA256(secret, "{ts}:{body}")>.
// SDK caveats: it keeps only the LAST h1 in the header (no multi-h1 rotation support), and it
// rejects when now > ts + 5 s (MAX_VALID_TIME_DIFFERENCE = 5). It only verifies (no signer).
import { Paddle } from "@paddle/paddle-node-sdk";

export const sdk = "@paddle/paddle-node-sdk@3.10.0";

// The SDK's crypto runtime is only initialised by the Paddle constructor, so build a client
// (the API key is never used for webhook verification; no network call is made).
let client;
const paddle = () => (client ??= new Paddle("pdl_sdbx_apikey_unused_for_webhook_verification"));

export async function verify({ secret, body, headers }) {
  try {
    const sig = headers["paddle-signature"];
    if (!sig) return false;
    return (await paddle().webhooks.isSignatureValid(body, secret, sig)) === true;
  } catch {
    return false;
  }
}
