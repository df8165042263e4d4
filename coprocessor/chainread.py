"""Compatibility path: `coprocessor.chainread` is `coprocessor_enclave.chainread`, where the measured enclave keeps it."""

from coprocessor_enclave.chainread import *  # noqa: F403 - the whole public surface, unchanged
