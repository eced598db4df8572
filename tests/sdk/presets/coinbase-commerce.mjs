// presets/coinbase-commerce.mjs
// Coinbase Commerce: X-CC-Webhook-Signature = hex(HMAC-SHA256(shared secret, raw body)).
// SDK: coinbase-commerce-node (official, deprecated along with the product) exposes
// Webhook.computeSignature (sign) and Webhook.verifySigHeader (verify, throws on mismatch).
import coinbase from "coinbase-commerce-node";

export const sdk = "coinbase-commerce-node@1.0.4";
const { Webhook } = coinbase;

export async function sign({ secret, body }) {
  return { headers: { "x-cc-webhook-signature": Webhook.computeSignature(body, secret) } };
}

export async function verify({ secret, body, headers }) {
  try {
    const sig = headers?.["x-cc-webhook-signature"];
    if (typeof sig !== "string") return false;
    return Webhook.verifySigHeader(body, sig, secret) === true;
  } catch {
    return false;
  }
}
