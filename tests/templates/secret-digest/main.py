"""The SHA-256 of the API_TOKEN secret: proves which value the template read, without publishing it."""

import hashlib


def run(ctx, nonce):
    return hashlib.sha256(ctx.secret("API_TOKEN").encode()).digest()
