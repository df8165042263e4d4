"""Leaves marks in its process at every run and reports the marks of earlier runs it finds: with one fresh
process per job, none. A module global, attributes set on an SDK module and on stdlib modules (`json`, `sys`,
at import and at run), and whether its module was imported in the job's own process (never in a zygote's).
Also whether its code came compiled by its zygote's compiler child (the importer holds that blob), and which
modules its process holds that every job's fork would pay for (their after-fork handlers; see bundles.py)."""

import json
import os
import sys

from coprocessor import sdk

IMPORTED_IN = os.getpid()
sys.warm_imports = getattr(sys, "warm_imports", 0) + 1  # a zygote that imported the template would show 2
RUNS = 0


def run(ctx):
    global RUNS
    RUNS += 1
    found = {
        "runs": RUNS,
        "imports": sys.warm_imports,
        "imported_in_this_process": IMPORTED_IN == os.getpid(),
        "sdk_mark": getattr(sdk, "warm_mark", None),
        "json_mark": getattr(json, "warm_mark", None),
        "compiled_ahead": "main.py" in (__loader__._compiled or {}),
        "costly_modules": sorted(m for m in ("threading", "random", "subprocess", "cffi", "Crypto") if m in sys.modules),
    }
    sdk.warm_mark = json.warm_mark = ctx.request_id.hex()
    return json.dumps(found)
