#!/usr/bin/env python3
"""Sign a webhook body the way each named provider documents it, independently of the router.

For the end-to-end preset tests: every formula below is written from the provider's own
documentation (cited per provider), with Python's hmac and hashlib, so a mistake in the
router's preset table is not repeated here. Where the provider ships an SDK that verifies,
the test also asks that SDK (tests/sdk/preset-sdk.mjs) to accept what this file signed.

    python3 tests/sdk/presets.py NAME --secret S --body-file F
        [--url U] [--id ID] [--timestamp UNIX_SECONDS]

Prints {"headers": {...}}. --url is the full URL the provider calls (for providers that
sign it); --id a delivery id for providers that send one in a header.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from datetime import datetime, timezone


def mac(digest, key, data):
    return hmac.new(key, data, digest).digest()


def hexmac(digest, key, data):
    return mac(digest, key, data).hex()


def b64mac(digest, key, data):
    return base64.b64encode(mac(digest, key, data)).decode()


def rfc3339(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(name, secret, body, url, delivery, ts):
    k = secret.encode()
    s256, s1 = hashlib.sha256, hashlib.sha1
    ms = str(ts * 1000)
    if name == "gitlab":
        # docs.gitlab.com/user/project/integrations/webhooks: X-Gitlab-Token is the secret token.
        return {"X-Gitlab-Token": secret, "Idempotency-Key": delivery, "X-Gitlab-Event": "Push Hook"}
    if name == "bitbucket":
        # support.atlassian.com "Manage webhooks": X-Hub-Signature: sha256=<hex HMAC of body>.
        return {"X-Hub-Signature": "sha256=" + hexmac(s256, k, body), "X-Request-UUID": delivery,
                "X-Event-Key": "repo:push"}
    if name == "linear":
        # linear.app/developers/webhooks: Linear-Signature = hex HMAC-SHA256 of the raw body;
        # the body's webhookTimestamp (ms) must be within a minute.
        return {"Linear-Signature": hexmac(s256, k, body), "Linear-Delivery": delivery,
                "Linear-Event": "Issue"}
    if name == "intercom":
        # developers.intercom.com webhooks: X-Hub-Signature: sha1=<hex HMAC-SHA1 of body>.
        return {"X-Hub-Signature": "sha1=" + hexmac(s1, k, body)}
    if name == "hubspot":
        # developers.hubspot.com "Validating requests", v3: base64 HMAC-SHA256 of
        # method + URI + body + timestamp (ms), X-HubSpot-Request-Timestamp.
        data = b"POST" + url.encode() + body + ms.encode()
        return {"X-HubSpot-Signature-v3": b64mac(s256, k, data), "X-HubSpot-Request-Timestamp": ms}
    if name == "square":
        # developer.squareup.com "Validate notifications": base64 HMAC-SHA256 of the
        # notification URL followed by the body.
        return {"x-square-hmacsha256-signature": b64mac(s256, k, url.encode() + body)}
    if name == "paddle":
        # developer.paddle.com "Verify webhook signatures": ts=<ts>;h1=<hex HMAC of ts:body>.
        return {"Paddle-Signature": f"ts={ts};h1=" + hexmac(s256, k, f"{ts}:".encode() + body)}
    if name == "typeform":
        # typeform.com/developers/webhooks/secure-your-webhooks: sha256=<base64 HMAC of body>.
        return {"Typeform-Signature": "sha256=" + b64mac(s256, k, body)}
    if name == "calendly":
        # developer.calendly.com webhook signatures: t=<ts>,v1=<hex HMAC of "t.body">.
        return {"Calendly-Webhook-Signature": f"t={ts},v1=" + hexmac(s256, k, f"{ts}.".encode() + body)}
    if name == "pagerduty":
        # developer.pagerduty.com "Verifying Signatures": v1=<hex HMAC of body>, comma separated
        # (an old secret's signature alongside while it rotates).
        stale = hexmac(s256, b"rotated-out-secret", body)
        return {"X-PagerDuty-Signature": f"v1={stale},v1=" + hexmac(s256, k, body), "X-Webhook-Id": delivery}
    if name == "sentry":
        # docs.sentry.io integration platform webhooks: Sentry-Hook-Signature = hex HMAC of body.
        return {"Sentry-Hook-Signature": hexmac(s256, k, body), "Request-ID": delivery,
                "Sentry-Hook-Resource": "issue"}
    if name == "vercel":
        # vercel.com/docs/webhooks: x-vercel-signature = hex HMAC-SHA1 of the body.
        return {"x-vercel-signature": hexmac(s1, k, body)}
    if name == "zendesk":
        # developer.zendesk.com "Verifying webhook authenticity": base64 HMAC-SHA256 of
        # timestamp + body.
        t = rfc3339(ts)
        return {"X-Zendesk-Webhook-Signature": b64mac(s256, k, t.encode() + body),
                "X-Zendesk-Webhook-Signature-Timestamp": t,
                "x-zendesk-webhook-invocation-id": delivery}
    if name == "woocommerce":
        # woocommerce class-wc-webhook.php generate_signature: base64 HMAC-SHA256 of the body.
        return {"X-WC-Webhook-Signature": b64mac(s256, k, body), "X-WC-Webhook-Delivery-ID": delivery,
                "X-WC-Webhook-Topic": "order.created"}
    if name == "coinbase-commerce":
        # commerce.coinbase.com docs / coinbase-commerce-node Webhook.js: hex HMAC of body.
        return {"X-CC-Webhook-Signature": hexmac(s256, k, body)}
    if name == "razorpay":
        # razorpay.com/docs/webhooks/validate-test: hex HMAC-SHA256 of the body.
        return {"X-Razorpay-Signature": hexmac(s256, k, body), "x-razorpay-event-id": delivery}
    if name == "lemon-squeezy":
        # docs.lemonsqueezy.com/help/webhooks/signing-requests: X-Signature = hex HMAC of body.
        return {"X-Signature": hexmac(s256, k, body), "X-Event-Name": "order_created"}
    if name == "airtable":
        # airtable.com/developers/web/api/webhooks-overview: hmac-sha256=<hex>, key is the
        # base64-decoded macSecretBase64.
        return {"X-Airtable-Content-MAC": "hmac-sha256=" + hexmac(s256, base64.b64decode(secret), body)}
    if name == "docusign":
        # developers.docusign.com Connect HMAC: X-DocuSign-Signature-N = base64 HMAC of body;
        # here the account's second key signs.
        return {"X-DocuSign-Signature-2": b64mac(s256, k, body)}
    if name == "box":
        # developer.box.com signatures v2: base64 HMAC-SHA256 of body + BOX-DELIVERY-TIMESTAMP.
        t = rfc3339(ts)
        return {"BOX-SIGNATURE-PRIMARY": b64mac(s256, k, body + t.encode()),
                "BOX-DELIVERY-TIMESTAMP": t, "BOX-DELIVERY-ID": delivery}
    if name == "segment":
        # segment.com/docs webhooks destination: X-Signature = hex HMAC-SHA1 of body.
        return {"X-Signature": hexmac(s1, k, body)}
    if name == "webflow":
        # developers.webflow.com "Verifying webhook signatures": hex HMAC of "timestamp:body",
        # timestamp in ms.
        return {"x-webflow-signature": hexmac(s256, k, ms.encode() + b":" + body), "x-webflow-timestamp": ms}
    if name == "clickup":
        # developer.clickup.com/docs/webhooksignature: X-Signature = hex HMAC of body.
        return {"X-Signature": hexmac(s256, k, body)}
    if name == "trello":
        # developer.atlassian.com Trello webhooks: base64 HMAC-SHA1 of body + callbackURL.
        return {"X-Trello-Webhook": b64mac(s1, k, body + url.encode())}
    if name == "postmark":
        # postmarkapp.com webhooks: Basic credentials in the webhook URL.
        return {"Authorization": "Basic " + base64.b64encode(b"postmark:" + k).decode()}
    if name in ("clerk", "resend"):
        # docs.svix.com "Verifying payloads manually": base64 HMAC of "id.timestamp.body"
        # with the base64 key after whsec_.
        key = base64.b64decode(secret.split("_", 1)[1])
        msg_id = "msg_" + delivery
        sig = b64mac(s256, key, f"{msg_id}.{ts}.".encode() + body)
        return {"svix-id": msg_id, "svix-timestamp": str(ts), "svix-signature": "v1," + sig}
    if name == "twitch":
        # dev.twitch.tv/docs/eventsub/handling-webhook-events: sha256=<hex HMAC of
        # message id + timestamp + body>, RFC 3339 timestamp.
        t = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
        return {"Twitch-Eventsub-Message-Id": delivery, "Twitch-Eventsub-Message-Timestamp": t,
                "Twitch-Eventsub-Message-Signature": "sha256=" + hexmac(s256, k, delivery.encode() + t.encode() + body),
                "Twitch-Eventsub-Message-Type": "notification",
                "Twitch-Eventsub-Subscription-Type": "channel.follow"}
    if name == "x":
        # developer.x.com "Securing webhooks": sha256=<base64 HMAC of body> with the consumer secret.
        return {"x-twitter-webhooks-signature": "sha256=" + b64mac(s256, k, body)}
    if name == "okta":
        # developer.okta.com event hooks: the configured Authorization header, verbatim.
        return {"Authorization": secret}
    if name == "mailgun":
        return {}  # the signature is written into the body by the caller (see mailgun_body)
    raise SystemExit(f"no signer for {name}")


def mailgun_body(secret, ts, event):
    """documentation.mailgun.com "Securing webhooks": hex HMAC-SHA256(key, timestamp + token)."""
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    sig = hexmac(hashlib.sha256, secret.encode(), f"{ts}{token}".encode())
    return json.dumps({"signature": {"timestamp": str(ts), "token": token, "signature": sig},
                       "event-data": {"event": event, "id": "ev-" + token[:8]}}).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--secret", required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--url", default="")
    p.add_argument("--id", default=None)
    p.add_argument("--timestamp", type=int, default=None)
    a = p.parse_args()
    ts = a.timestamp if a.timestamp is not None else int(time.time())
    delivery = a.id or str(uuid.uuid4())
    with open(a.body_file, "rb") as f:
        body = f.read()
    out = {}
    if a.name == "mailgun":
        body = mailgun_body(a.secret, ts, "delivered")
        out["body"] = body.decode()
    out["headers"] = sign(a.name, a.secret, body, a.url, delivery, ts)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
