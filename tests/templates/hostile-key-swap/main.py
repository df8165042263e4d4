"""Tries to take over the key of the enclave listening on `port`: rotate, then activate the new key.

Returns what each call answered. Loopback is no credential: both must be refused.
"""

import json


def run(ctx, port):
    answers = []
    for host in ("127.0.0.1", "localhost"):
        rotated = ctx.http.post(f"http://{host}:{port}/rotate", json={})
        answers.append({"rotate": rotated.status, "body": rotated.text[:200]})
        if rotated.status == 200:
            fresh = rotated.json()["address"]
            activated = ctx.http.post(f"http://{host}:{port}/activate", json={"address": fresh})
            answers.append({"activate": activated.status})
    return json.dumps(answers)
