"""json-http through the real enclave and workers, against a real HTTP server on loopback.

The manifest allows any public host on ports 80/443; the loopback server listens on a random
port, so the happy paths run a copy whose `[http] hosts` is `127.0.0.1:*` (a different template
id, same code). One test runs the real manifest to show it refuses that port.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from coprocessor.protocol import Status
from coprocessor.testing import LoopbackHttp, Reply, TemplateRunner

TEMPLATE = Path(__file__).resolve().parents[1]


def loopback_copy(destination: Path) -> Path:
    """The template copied to `destination` with `[http] hosts` rewritten to the loopback server's."""
    shutil.copytree(TEMPLATE, destination, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    manifest = destination / "template.toml"
    text, count = re.subn(r"(?m)^hosts = .*$", 'hosts = ["127.0.0.1:*"]', manifest.read_text())
    assert count == 1
    manifest.write_text(text)
    return destination


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackHttp]:
    with LoopbackHttp() as http:
        http.routes["/ticker"] = Reply.json({"data": {"items": [{"price": "3456.789"}, {"price": 12}]}})
        http.routes["/raw"] = Reply(200, b'{"exact": 1.1, "big": 123456789012345678901234567890.5, "neg": -1.5e3, '
                                         b'"nan": NaN, "inf": Infinity, "flag": true, "text": "12 USD", '
                                         b'"list": [1, 2], "a.b": {"c": "7"}, "huge": "1e80"}')
        http.routes["/array"] = Reply.json([{"p": "1"}, {"p": "-0.25"}])
        http.routes["/broken"] = Reply(200, b"<html>not json</html>")
        http.routes["/down"] = Reply(503, b"maintenance")
        yield http


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemplateRunner]:
    with TemplateRunner(loopback_copy(tmp_path_factory.mktemp("json-http") / "json-http")) as runner:
        yield runner


def fetch(runner: TemplateRunner, server: LoopbackHttp, route: str, path: str, decimals: int) -> int:
    return runner.run("json-http", [server.url(route), path, decimals]).values[0]


def refused(runner: TemplateRunner, url: str, path: str, decimals: int = 0) -> tuple[Status, str]:
    result = runner.run("json-http", [url, path, decimals])
    assert not result.ok
    return result.status, result.reason


def test_nestedPath_stringNumber_scaledAndTruncated(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert fetch(runner, server, "/ticker", "data.items[0].price", 2) == 345678
    assert fetch(runner, server, "/ticker", "data.items[0].price", 8) == 345678900000
    assert fetch(runner, server, "/ticker", "data.items[1].price", 6) == 12_000_000


def test_jsonNumbers_exactWithoutFloatRounding(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert fetch(runner, server, "/raw", "exact", 18) == 1_100_000_000_000_000_000  # float would give ...128
    assert fetch(runner, server, "/raw", "big", 1) == 1234567890123456789012345678905
    assert fetch(runner, server, "/raw", "neg", 0) == -1500


def test_quotedKeyAndTopLevelIndex(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert fetch(runner, server, "/raw", '["a.b"].c', 3) == 7000
    assert fetch(runner, server, "/array", "[1].p", 2) == -25
    assert fetch(runner, server, "/array", "[1].p", 1) == -2  # truncated toward zero


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        ("flag", "not a number: true"),
        ("text", "not a number"),
        ("list", "not a number"),
        ("huge", "does not fit in"),
        ("exact.more", "nothing at 'more' under exact"),
        ("list[2]", "nothing at 2 under list"),
        ("missing", "nothing at 'missing' under the top level"),
        ("a..b", "cannot parse at character 1"),
        ("list[-1]", "cannot parse"),
    ],
)
def test_badPathOrValue_invalidInput(runner: TemplateRunner, server: LoopbackHttp, path: str, reason: str) -> None:
    status, text = refused(runner, server.url("/raw"), path)
    assert status == Status.INVALID_INPUT
    assert reason in text


def test_nonHttpUrl_invalidInputWithoutFetching(runner: TemplateRunner, server: LoopbackHttp) -> None:
    before = len(server.seen)
    assert refused(runner, "file:///etc/passwd", "x")[0] == Status.INVALID_INPUT
    assert len(server.seen) == before


def test_upstreamFailures_templateError(runner: TemplateRunner, server: LoopbackHttp) -> None:
    status, reason = refused(runner, server.url("/broken"), "x")
    assert status == Status.TEMPLATE_ERROR and "UpstreamError" in reason and "is not JSON" in reason
    status, reason = refused(runner, server.url("/down"), "x")
    assert status == Status.TEMPLATE_ERROR and "HTTP 503" in reason
    status, reason = refused(runner, server.url("/nowhere"), "x")
    assert status == Status.TEMPLATE_ERROR and "HTTP 404" in reason


def test_realManifest_httpsOn443Only(server: LoopbackHttp) -> None:
    with TemplateRunner(TEMPLATE) as real:
        status, reason = refused(real, server.url("/ticker"), "data.items[0].price")
    assert status == Status.TEMPLATE_ERROR
    assert f"http://127.0.0.1:{server.port} is not allowed by [http] hosts" in reason
