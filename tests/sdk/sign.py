#!/usr/bin/env python3
"""Sign a webhook body the way the provider does, using the provider's own SDK.

For Hookyard's end-to-end tests: they send a body with these headers and
check that the router accepts signatures made by the real provider SDKs, not
only by our own signing code. Install the SDKs with
`pip install -r tests/sdk/requirements.txt`; GitHub has no Python SDK, so its
signer is `sign-github.mjs` beside this file (same CLI and output).

    python3 tests/sdk/sign.py SCHEME --secret S --body-file F
        [--url U] [--timestamp T] [--id ID] [--content-type form|json]

SCHEME is stripe, svix, standard-webhooks, slack or twilio. Prints one JSON
object: {"headers": {...}}, and for twilio also {"url": ...}, the URL that was
signed (for a JSON body it carries ?bodySHA256=..., and the request must go to
it). T defaults to now (Unix seconds), ID to a random msg_ id.
"""

import argparse
import json
import secrets
import sys
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl


class _MultiDict(dict):
    """Form params with repeated keys, in the getlist() shape twilio's SDK reads."""

    def getlist(self, key):
        return self[key]


def sign(scheme, secret, body, url=None, timestamp=None, msg_id=None, content_type="form"):
    ts = int(time.time()) if timestamp is None else int(timestamp)
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    text = body.decode("utf-8")  # every SDK here signs a str
    if scheme == "stripe":
        import stripe

        header = stripe.WebhookSignature.generate_signature_header(text, secret, timestamp=ts)
        return {"headers": {"Stripe-Signature": header}}
    if scheme in ("svix", "standard-webhooks"):
        if scheme == "svix":
            from svix.webhooks import Webhook

            prefix = "svix"
        else:
            from standardwebhooks.webhooks import Webhook

            prefix = "webhook"
        when = datetime.fromtimestamp(ts, tz=timezone.utc)
        signature = Webhook(secret).sign(msg_id, when, text)
        return {
            "headers": {
                f"{prefix}-id": msg_id,
                f"{prefix}-timestamp": str(ts),
                f"{prefix}-signature": signature,
            }
        }
    if scheme == "slack":
        from slack_sdk.signature import SignatureVerifier

        signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
        return {"headers": {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(ts)}}
    if scheme == "twilio":
        from twilio.request_validator import RequestValidator

        if not url:
            raise SystemExit("twilio needs --url (the URL Twilio would request)")
        validator = RequestValidator(secret)
        if content_type == "json":
            url += ("&" if "?" in url else "?") + "bodySHA256=" + validator.compute_hash(text)
            params = {}
        else:
            params = _MultiDict()
            for key, value in parse_qsl(text, keep_blank_values=True):
                params.setdefault(key, []).append(value)
        signature = validator.compute_signature(url, params)
        return {"headers": {"X-Twilio-Signature": signature}, "url": url}
    raise SystemExit(f"unknown scheme {scheme!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scheme", choices=["stripe", "svix", "standard-webhooks", "slack", "twilio"])
    parser.add_argument("--secret", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--url")
    parser.add_argument("--timestamp", type=int)
    parser.add_argument("--id")
    parser.add_argument("--content-type", choices=["form", "json"], default="form", help="twilio only")
    args = parser.parse_args(argv)
    with open(args.body_file, "rb") as f:
        body = f.read()
    out = sign(args.scheme, args.secret, body, args.url, args.timestamp, args.id, args.content_type)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
