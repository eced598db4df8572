// presets/sendgrid.mjs — Twilio SendGrid signed Event Webhook (ECDSA P-256 / SHA-256).
// The SDK only VERIFIES, so only `verify` is implemented.
import eventwebhookPkg from "@sendgrid/eventwebhook";
const { EventWebhook, EventWebhookHeader } = eventwebhookPkg;

export const sdk = "@sendgrid/eventwebhook@8.0.0";

// secret: the "Verification Key" shown by SendGrid = base64 of the DER SubjectPublicKeyInfo
// (starts "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"), no PEM armour.
export async function verify({ secret, body, headers }) {
  try {
    const h = headers || {};
    const sig = h[EventWebhookHeader.SIGNATURE().toLowerCase()];
    const ts = h[EventWebhookHeader.TIMESTAMP().toLowerCase()];
    if (!sig || !ts) return false;
    const ew = new EventWebhook();
    const key = ew.convertPublicKeyToECDSA(secret);
    return ew.verifySignature(key, body, sig, ts) === true;
  } catch {
    return false;
  }
}
