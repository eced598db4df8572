// presets/webflow.mjs
// Webflow: x-webflow-signature = hex(HMAC-SHA256(secret, `${x-webflow-timestamp}:${raw body}`)),
// x-webflow-timestamp in unix milliseconds. The SDK only verifies
// (client.webhooks.verifySignature) and does NOT check the timestamp age (docs say 5 min).
import { WebflowClient } from "webflow-api";

export const sdk = "webflow-api@3.3.4";

let client;
function getClient() {
  // No network call is made by verifySignature; the token is a placeholder.
  if (!client) client = new WebflowClient({ accessToken: "unused" });
  return client;
}

export async function verify({ secret, body, headers }) {
  try {
    if (!headers?.["x-webflow-signature"] || !headers?.["x-webflow-timestamp"]) return false;
    return (await getClient().webhooks.verifySignature({ headers, body, secret })) === true;
  } catch {
    return false;
  }
}
