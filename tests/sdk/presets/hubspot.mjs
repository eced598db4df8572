// presets/hubspot.mjs — HubSpot request signature v3, via @hubspot/api-client's Signature helper.
// Signature v3 = base64(HMAC-SHA256(clientSecret, method + uri + body + timestampMs)).
// NOTE: the SDK uses the URI exactly as given (no percent-decoding). HubSpot's docs tell the
// receiver to decode %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B in the URI first.
// The SDK's isValid() throws when the timestamp is missing or older than 300000 ms (one-sided check).
import { Signature } from "@hubspot/api-client";

export const sdk = "@hubspot/api-client@14.0.1";

export async function sign({ secret, body, url, timestamp }) {
  const tsMs = timestamp === undefined ? Date.now() : Math.round(timestamp * 1000);
  const sig = Signature.getSignature("POST", "v3", {
    clientSecret: secret,
    requestBody: body,
    url,
    timestamp: tsMs,
  });
  return {
    headers: {
      "x-hubspot-signature-v3": sig,
      "x-hubspot-request-timestamp": String(tsMs),
    },
    url,
    body,
  };
}

export async function verify({ secret, body, headers, url, method }) {
  try {
    const signature = headers["x-hubspot-signature-v3"];
    const ts = headers["x-hubspot-request-timestamp"];
    if (!signature || ts === undefined) return false;
    return Signature.isValid({
      signatureVersion: "v3",
      signature,
      clientSecret: secret,
      requestBody: body,
      url,
      method: method || "POST",
      timestamp: Number(ts),
    }) === true;
  } catch {
    return false;
  }
}
