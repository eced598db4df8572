// presets/linear.mjs — Linear webhooks, checked with Linear's own SDK.
// The SDK only verifies (LinearWebhookClient.verify); it has no signing helper.
// verify() also enforces that the body's `webhookTimestamp` (unix ms) is within 60 s of now.
import { LinearWebhookClient, LINEAR_WEBHOOK_SIGNATURE_HEADER } from "@linear/sdk/webhooks";

export const sdk = "@linear/sdk@98.0.0";

export async function verify({ secret, body, headers }) {
  try {
    const client = new LinearWebhookClient(secret);
    const sig = headers[LINEAR_WEBHOOK_SIGNATURE_HEADER]; // "linear-signature"
    if (!sig) return false;
    return client.verify(Buffer.from(body, "utf8"), sig) === true;
  } catch {
    return false;
  }
}
