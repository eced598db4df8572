#!/usr/bin/env python3
"""A real SMTP server for Hookyard's end-to-end tests (aiosmtpd from PyPI).

    python3 tests/smtp/server.py --port P --out DIR [--replies 451,250,550]

Every DATA it receives is answered with the next code in --replies (then 250), and written
to DIR as N.json: the envelope, the reply code, and the message parsed with Python's email
package (decoded subject, Message-ID, parts). Prints "ready" once it listens.
"""

import argparse
import asyncio
import email
import email.header
import email.policy
import json
import os
import signal

from aiosmtpd.controller import Controller

REPLIES = {
    250: "250 OK",
    451: "451 4.3.0 Temporary failure, try again later",
    550: "550 5.1.1 Mailbox unavailable",
}


class Handler:
    def __init__(self, out, replies):
        self.out = out
        self.replies = list(replies)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        code = self.replies.pop(0) if self.replies else 250
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        parts = []
        text = html = None
        for part in msg.walk():
            parts.append(part.get_content_type())
            if part.get_content_type() == "text/plain" and text is None:
                text = part.get_content()
            elif part.get_content_type() == "text/html" and html is None:
                html = part.get_content()
        record = {
            "code": code,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": msg["message-id"],
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "reply_to": str(msg["reply-to"]) if msg["reply-to"] else None,
            "parts": parts,
            "text": text,
            "html": html,
            "raw": (envelope.original_content or envelope.content).decode("utf-8", "replace"),
        }
        self.count += 1
        path = os.path.join(self.out, f"{self.count:04}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)  # readers never see half a file
        return REPLIES[code]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--replies", default="")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    replies = [int(r) for r in args.replies.split(",") if r]
    controller = Controller(Handler(args.out, replies), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    controller.stop()


asyncio.run(main())
