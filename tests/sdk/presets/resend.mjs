// presets/resend.mjs — Resend webhooks are delivered by Svix (svix-id / svix-timestamp / svix-signature).
// The Resend SDK only VERIFIES (resend.webhooks.verify, backed by standardwebhooks), so only `verify`.
import { Resend } from "resend";

export const sdk = "resend@6.38.0";

// A dummy API key is enough: webhooks.verify() makes no network call.
const client = new Resend("re_dummy_key_for_local_verification");

// secret: the webhook's "Signing Secret" ("whsec_<base64>") from the webhook details page.
// Note: rejects timestamps more than 5 minutes from now (standardwebhooks tolerance).
export async function verify({ secret, body, headers }) {
  try {
    const h = headers || {};
    client.webhooks.verify({
      payload: body,
      headers: {
        id: h["svix-id"],
        timestamp: h["svix-timestamp"],
        signature: h["svix-signature"],
      },
      webhookSecret: secret,
    });
    return true;
  } catch {
    return false;
  }
}
