// presets/square.mjs — Square webhook signature via the official `square` SDK (WebhooksHelper).
// x-square-hmacsha256-signature = base64(HMAC-SHA256(signatureKey, notificationUrl + body)).
// The SDK only verifies; it has no signing helper.
import { WebhooksHelper } from "square";

export const sdk = "square@46.0.0";

export async function verify({ secret, body, headers, url }) {
  try {
    const signatureHeader = headers["x-square-hmacsha256-signature"];
    if (!signatureHeader || !url) return false;
    return (await WebhooksHelper.verifySignature({
      requestBody: body,
      signatureHeader,
      signatureKey: secret,
      notificationUrl: url,
    })) === true;
  } catch {
    return false;
  }
}
