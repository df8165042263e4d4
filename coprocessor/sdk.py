"""Compatibility path: `coprocessor.sdk` is `coprocessor_enclave.sdk`, where the measured enclave keeps it."""

from coprocessor_enclave.sdk import *  # noqa: F403 - the whole public surface, unchanged
