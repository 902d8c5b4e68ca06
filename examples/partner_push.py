"""A partner's side of the API, as a partner would write it: sign and push a batch, confirm a binding.

    python examples/partner_push.py --base-url http://127.0.0.1:5000 \
        --key-id KEY_ID --secret SECRET push events.json
    python examples/partner_push.py ... bind ABCD2345 CARD-REF-0001
    python examples/partner_push.py ... status BATCH_ID

Only the Python standard library is used, so a partner can copy it as is.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.error
import urllib.request


def signed_request(base_url: str, key_id: str, secret: str, method: str, path: str,
                   payload: object | None = None) -> tuple[int, object]:
    """Sign `timestamp\\nnonce\\nbody` (the exact bytes sent) with HMAC-SHA256 and send it."""
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    timestamp = str(int(time.time()))
    nonce = secrets.token_urlsafe(16)
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    signature = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=body if payload is not None else None,
        method=method,
        headers={
            "Content-Type": "application/json",
            "X-Partner-Key": key_id,
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": signature,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:5000")
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--secret", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="push the events in a JSON file ({\"events\": [...]})")
    push.add_argument("file")
    bind = sub.add_parser("bind", help="confirm a citizen's binding code with your account reference")
    bind.add_argument("binding_code")
    bind.add_argument("account_ref")
    status = sub.add_parser("status", help="the final outcome of each event of a batch")
    status.add_argument("batch_id")
    args = parser.parse_args()

    if args.command == "push":
        with open(args.file, encoding="utf-8") as handle:
            payload = json.load(handle)
        result = signed_request(args.base_url, args.key_id, args.secret, "POST", "/api/v1/partner/events:batch",
                                payload)
    elif args.command == "bind":
        result = signed_request(args.base_url, args.key_id, args.secret, "POST", "/api/v1/partner/bindings",
                                {"binding_code": args.binding_code, "account_ref": args.account_ref})
    else:
        result = signed_request(args.base_url, args.key_id, args.secret, "GET",
                                f"/api/v1/partner/batches/{args.batch_id}")
    status_code, body = result
    print(status_code)
    print(json.dumps(body, ensure_ascii=False, indent=2))
    sys.exit(0 if status_code < 400 else 1)


if __name__ == "__main__":
    main()
