"""The template test kit as a pytest plugin (entry point `coprocessor`, loaded wherever the package is
installed): a template's own tests ask for `template_runner` instead of building one.

    def test_run(template_runner):
        assert template_runner.run(args=[[10, 20, 60]]).values == (30, 50)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coprocessor_enclave.template import MANIFEST


def _template_folder(test_file: Path) -> Path:
    """The template a test file belongs to: the nearest folder above it with a manifest."""
    for folder in test_file.resolve().parents:
        if (folder / MANIFEST).is_file():
            return folder
    raise pytest.UsageError(f"{test_file} is not inside a template folder (no {MANIFEST} above it)")


@pytest.fixture(scope="module")
def template_runner(request: pytest.FixtureRequest) -> Iterator[object]:
    """A `TemplateRunner` over the template this test module belongs to (the real enclave and worker path, no chain)."""
    from . import TemplateRunner  # imported when asked for: the plugin loads in every pytest run

    with TemplateRunner(_template_folder(Path(str(request.path)))) as runner:
        yield runner
