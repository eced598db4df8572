// presets/discord.mjs — Discord Interactions endpoint AND Discord Webhook Events (same scheme):
// Ed25519 over `${X-Signature-Timestamp}${rawBody}`, signature hex in X-Signature-Ed25519.
// The SDK only VERIFIES (verifyKey), so only `verify` is implemented.
import { verifyKey } from "discord-interactions";

export const sdk = "discord-interactions@4.4.0";

// secret: the application's "Public Key" (64 lowercase hex chars = 32-byte raw Ed25519 key)
// from Developer Portal → your app → General Information.
export async function verify({ secret, body, headers }) {
  try {
    const h = headers || {};
    const sig = h["x-signature-ed25519"];
    const ts = h["x-signature-timestamp"];
    if (!sig || !ts) return false;
    return (await verifyKey(body, sig, ts, secret)) === true;
  } catch {
    return false;
  }
}
