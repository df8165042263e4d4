"""Loaded first by pytest, before any template's tests are imported."""

import sys

# A template bundle may hold no bytecode (its id would not pin it), so importing a template's
# tests must not leave __pycache__ folders in it.
sys.dont_write_bytecode = True
