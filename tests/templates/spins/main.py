"""Never returns."""


def run(ctx):
    n = 0
    while True:
        n += 1
