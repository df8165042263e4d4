"""Leaves without a result: SystemExit is not an Exception, and os._exit skips everything."""

import os


def run(ctx):
    try:
        raise SystemExit(0)
    finally:
        os._exit(0)
