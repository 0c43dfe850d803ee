"""Verifies recorded webhook requests with the PyPI package `standardwebhooks`.

    e2e/.venv/bin/python e2e/verify_webhooks.py e2e/artifacts/webhook-requests.json

The file is written by e2e/webhooks.mjs:

    {"requests": [{"name": ..., "bodyBase64": <the raw body>, "body": <the same, as text>,
                   "headers": {"webhook-id": ..., "webhook-timestamp": ..., "webhook-signature": ...},
                   "valid": [{"label": ..., "secret": "whsec_..."}],
                   "invalid": [{"label": ..., "secret": "whsec_..."}]}]}

Each request must verify with every `valid` secret, and must be refused
(WebhookVerificationError) with every `invalid` secret and, for every `valid`
secret, with a tampered body. The library also refuses timestamps more than
five minutes away, so run this right after the requests were received.
Exits 1 if any outcome is wrong, 2 on a bad invocation.
"""

import base64
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def outcome(secret, body, headers):
    """None when the request verifies, else the library's reason."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError as error:
        return str(error) or "WebhookVerificationError"
    return None


def tampered(body):
    """The body with another event type: a forgery with a captured signature."""
    parsed = json.loads(body)
    forged = "user.followed" if parsed.get("type") == "article.favorited" else "article.favorited"
    return json.dumps({**parsed, "type": forged}, separators=(",", ":")).encode()


def main(argv):
    if len(argv) != 2:
        print("usage: verify_webhooks.py <requests json>", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as file:
        requests = json.load(file)["requests"]
    if not requests:
        print("FAIL no requests to verify")
        return 1

    failures = []

    def expect(name, label, secret, body, headers, should_pass):
        try:
            reason = outcome(secret, body, headers)
        except Exception as error:  # only WebhookVerificationError is a refusal
            wrong = f"raises {type(error).__name__}: {error} with {label}"
        else:
            if should_pass and reason is not None:
                wrong = f"does not verify with {label}: {reason}"
            elif not should_pass and reason is None:
                wrong = f"verifies with {label}, expected a refusal"
            else:
                wrong = None
        if wrong:
            failures.append(f"PyPI standardwebhooks: {name} {wrong}")
            print(f"FAIL {failures[-1]}")
        else:
            verdict = f"verifies with {label}" if should_pass else f"is refused with {label} ({reason})"
            print(f"ok   PyPI standardwebhooks: {name} {verdict}")

    for request in requests:
        name = request["name"]
        body = base64.b64decode(request["bodyBase64"])
        if body.decode("utf-8") != request["body"]:
            failures.append(f"{name}: body and bodyBase64 differ")
        headers = request["headers"]
        for entry in request["valid"]:
            expect(name, entry["label"], entry["secret"], body, headers, True)
            expect(name, f"{entry['label']} but a tampered body", entry["secret"], tampered(body), headers, False)
        for entry in request["invalid"]:
            expect(name, entry["label"], entry["secret"], body, headers, False)

    if failures:
        print(f"{len(failures)} failure(s) with the PyPI package", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
