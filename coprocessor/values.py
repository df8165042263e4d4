"""Compatibility path: `coprocessor.values` is `coprocessor_enclave.values`, where the measured enclave keeps it."""

from coprocessor_enclave.values import *  # noqa: F403 - the whole public surface, unchanged
