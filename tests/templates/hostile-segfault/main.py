"""Crashes the worker with a NULL dereference."""

import ctypes


def run(ctx):
    return ctypes.c_int.from_address(16).value  # page zero is never mapped
