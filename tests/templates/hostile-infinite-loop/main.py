"""Never returns: a busy loop that even swallows exceptions raised into it."""


def run(ctx):
    n = 0
    while True:
        try:
            while True:
                n += 1
        except Exception:
            continue
