"""How a template run ended: a module of its own, so the job process can name outcomes without the protocol's codecs."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Outcome of a template run, as `Status` in RequestLib.sol."""

    OK = 0
    TEMPLATE_ERROR = 1
    INVALID_INPUT = 2
    TIMEOUT = 3
    RESOURCE_LIMIT = 4
    CHAIN_DATA_INVALID = 5  # the host's chain data failed verification against the anchor block hash
