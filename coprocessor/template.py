"""Compatibility path: `coprocessor.template` is `coprocessor_enclave.template`, where the measured enclave keeps it."""

from coprocessor_enclave.template import *  # noqa: F403 - the whole public surface, unchanged
