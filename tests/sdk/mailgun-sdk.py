#!/usr/bin/env python3
"""Asks Mailgun's own SDK (PyPI mailgun, SecurityGuard.verify_webhook) whether it accepts a
webhook body, as tests/sdk/preset-sdk.mjs does for the providers with npm SDKs.

    python3 tests/sdk/mailgun-sdk.py < request.json      # {"secret", "body", ...}

Prints {"sdk": "mailgun==1.10.0", "valid": true|false}.
"""

import json
import sys

from mailgun.security import SecurityGuard

request = json.load(sys.stdin)
try:
    sig = json.loads(request["body"])["signature"]
    valid = bool(SecurityGuard.verify_webhook(request["secret"], sig["token"], sig["timestamp"], sig["signature"]))
except (KeyError, ValueError, TypeError):
    valid = False
json.dump({"sdk": "mailgun==1.10.0", "valid": valid}, sys.stdout)
