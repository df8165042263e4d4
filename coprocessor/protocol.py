"""Compatibility path: `coprocessor.protocol` is `coprocessor_enclave.protocol`, where the measured enclave keeps it."""

from coprocessor_enclave.protocol import *  # noqa: F403 - the whole public surface, unchanged
