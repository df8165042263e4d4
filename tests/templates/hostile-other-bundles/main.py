"""Searches its process for median-price's source (as text or hex): every live object the collector knows, every local
of every frame up the stack, every module's globals. Returns where it found it, or "nothing"."""

import gc
import sys

PARTS = ["widen ", "max_deviation_bps"]  # median-price's main.py says both in one string; this file never does
MARKER = None


def _holds(value, seen, depth=0):
    if isinstance(value, (str, bytes)):
        text = value if isinstance(value, str) else value.decode("latin-1")
        return value is not MARKER and (MARKER in text or MARKER.encode().hex() in text)  # raw, or as hex in a frame
    if depth > 4 or id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, dict):
        return any(_holds(k, seen, depth + 1) or _holds(v, seen, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_holds(v, seen, depth + 1) for v in value)
    return False


def run(ctx):
    global MARKER
    MARKER = "".join(PARTS)
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, (dict, list, tuple)) and _holds(obj, set()):
            found.append(f"object {type(obj).__name__}")
    frame = sys._getframe()
    while frame is not None:
        if _holds(frame.f_locals, set()):
            found.append(f"frame {frame.f_code.co_name}")
        frame = frame.f_back
    for name, module in list(sys.modules.items()):
        if _holds(getattr(module, "__dict__", {}), set()):
            found.append(f"module {name}")
    return "; ".join(found[:10]) or "nothing"
