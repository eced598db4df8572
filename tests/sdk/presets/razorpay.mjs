// presets/razorpay.mjs
// Razorpay signs webhooks with hex(HMAC-SHA256(webhook secret, raw body)) in X-Razorpay-Signature.
// The official SDK only verifies (Razorpay.validateWebhookSignature); it has no signing helper.
import Razorpay from "razorpay";

export const sdk = "razorpay@2.9.8";

export async function verify({ secret, body, headers }) {
  try {
    const sig = headers?.["x-razorpay-signature"];
    // validateWebhookSignature throws when an argument is missing; plain string compare otherwise.
    return Razorpay.validateWebhookSignature(body, sig, secret) === true;
  } catch {
    return false;
  }
}
