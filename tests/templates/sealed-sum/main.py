"""Sums values that only the cluster's enclaves could read: the request carried them sealed."""


def run(ctx, values):
    return sum(values)
