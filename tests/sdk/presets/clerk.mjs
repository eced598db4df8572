// presets/clerk.mjs — Clerk webhooks are delivered by Svix (svix-id / svix-timestamp / svix-signature).
// The official Clerk backend SDK only VERIFIES (verifyWebhook), so only `verify` is implemented.
import { verifyWebhook } from "@clerk/backend/webhooks";

export const sdk = "@clerk/backend@3.25.0";

// secret: the endpoint's "Signing Secret" from the Clerk Dashboard, e.g. "whsec_<base64>".
// Note: verifyWebhook (via standardwebhooks) rejects timestamps more than 5 minutes from now.
export async function verify({ secret, body, headers, url, method }) {
  try {
    const req = new Request(url || "https://example.invalid/webhooks/clerk", {
      method: method || "POST",
      headers: headers || {},
      body,
    });
    await verifyWebhook(req, { signingSecret: secret });
    return true;
  } catch {
    return false;
  }
}
