"""price-aggregate through the real enclave and workers, with its sources played by a loopback HTTP server.

The manifest's sources are real exchange APIs, unreachable from tests; the tests run copies whose
`[http] hosts` and `[[config.sources]]` point at the loopback server instead (same code, another
template id).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from coprocessor.protocol import Status
from coprocessor.template import load_template
from coprocessor.testing import LoopbackHttp, Reply, RunResult, TemplateRunner

TEMPLATE = Path(__file__).resolve().parents[1]
Run = Callable[[str, list[int]], RunResult]


def with_sources(destination: Path, sources: list[tuple[str, str, str]]) -> Path:
    """The template copied to `destination` with `[http] hosts` = loopback and `sources` as (name, url, path)."""
    shutil.copytree(TEMPLATE, destination, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    manifest = destination / "template.toml"
    text, count = re.subn(r"(?m)^hosts = .*$", 'hosts = ["127.0.0.1:*"]', manifest.read_text())
    assert count == 1
    text = text[: text.index("[[config.sources]]")]  # the sources are the manifest's last tables
    text += "".join(f'[[config.sources]]\nname = "{n}"\nurl = "{u}"\npath = \'{p}\'\n\n' for n, u, p in sources)
    manifest.write_text(text)
    return destination


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackHttp]:
    with LoopbackHttp() as http:
        http.routes["/coinbase"] = Reply.json({"data": {"amount": "3000.10", "base": "ETH", "currency": "USD"}})
        http.routes["/kraken"] = Reply.json({"error": [], "result": {"XETHZUSD": {"c": ["3001.00000", "0.5"]}}})
        http.routes["/bitstamp"] = Reply.json({"last": "2999.9"})
        http.routes["/gemini"] = Reply.json({"last": "3000.2"})
        http.routes["/coingecko"] = Reply(200, b'{"ethereum": {"usd": 3000.5}}')  # a JSON number, kept exact
        http.routes["/manipulated"] = Reply.json({"last": "3500"})
        http.routes["/down"] = Reply(503, b"maintenance")
        http.routes["/html"] = Reply(200, b"<html>captcha</html>")
        http.routes["/nan"] = Reply(200, b'{"last": NaN}')
        http.routes["/negative"] = Reply.json({"last": "-1"})
        yield http


FIVE = [
    ("coinbase", "/coinbase", "data.amount"),
    ("kraken", "/kraken", "result.XETHZUSD.c[0]"),
    ("bitstamp", "/bitstamp", "last"),
    ("gemini", "/gemini", "last"),
    ("coingecko", "/coingecko", "ethereum.usd"),
]
BROKEN = [
    ("down", "/down", "last"), ("html", "/html", "last"), ("nan", "/nan", "last"),
    ("negative", "/negative", "last"), ("moved", "/bitstamp", "price"), ("gone", "/missing", "x"),
]
EVIL = ("evil", "/manipulated", "last")
# Each variant is a copy of the template with these (name, route, path) sources.
VARIANTS = {
    "five": FIVE,
    "outlier": [*FIVE[:3], EVIL],
    "broken": [*FIVE[:2], *BROKEN],
    "too-few": [FIVE[0], BROKEN[0], BROKEN[1]],
    "disagree": [FIVE[0], FIVE[1], EVIL],
    "two": FIVE[:2],
    "bad-config": [("bad", "/coinbase", "data..amount")],
}


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory, server: LoopbackHttp) -> Iterator[Run]:
    """Runs the copy of the template for a variant; one enclave serves all copies."""
    root = tmp_path_factory.mktemp("price-aggregate")
    folders = {
        name: with_sources(root / name, [(n, server.url(route), p) for n, route, p in sources])
        for name, sources in VARIANTS.items()
    }
    ids = {name: load_template(folder).id_hex for name, folder in folders.items()}
    with TemplateRunner(*folders.values()) as enclave:
        yield lambda variant, args: enclave.run(ids[variant], args)


def test_allSourcesAgree_medianOfAll(runner: Run) -> None:
    result = runner("five", [100, 3, 8])
    assert result.values == (300020000000, 5)  # median of 2999.9, 3000.1, 3000.2, 3000.5, 3001


def test_outlierDropped_medianOfTheRest(runner: Run, capfd: pytest.CaptureFixture[str]) -> None:
    result = runner("outlier", [100, 3, 2])
    assert result.values == (300010, 3)  # 3500 dropped; median of 2999.9, 3000.1, 3001
    assert "dropped evil: 350000 is more than 100 bps from 300055" in capfd.readouterr().err


def test_failingSourcesSkippedAndLogged(runner: Run, capfd: pytest.CaptureFixture[str]) -> None:
    result = runner("broken", [50, 2, 8])
    assert result.values == (300055000000, 2)
    log = capfd.readouterr().err
    for reason in ("skipped down: CapabilityError: HTTP 503", "skipped html: SourceError: answer is not JSON",
                   "skipped nan: SourceError: not a finite number", "skipped negative: SourceError: not a positive price",
                   "skipped moved: SourceError: nothing at 'price'", "skipped gone: CapabilityError: HTTP 404"):
        assert reason in log


def test_tooFewAnswer_templateError(runner: Run) -> None:
    result = runner("too-few", [100, 2, 8])
    assert result.status == Status.TEMPLATE_ERROR
    assert result.reason == "NotEnoughSources: only 1 of 3 sources answered, 2 needed"


def test_tooFewAgree_templateError(runner: Run) -> None:
    result = runner("disagree", [10, 3, 8])
    assert result.status == Status.TEMPLATE_ERROR
    assert result.reason == "NotEnoughSources: only 2 of 3 answers within 10 bps of their median, 3 needed"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([10_001, 1, 8], "maxDeviationBps is at most 10000"),
        ([100, 0, 8], "minSources must be 1 to 2"),
        ([100, 3, 8], "minSources must be 1 to 2"),
        ([100, 1, 37], "decimals is at most 36"),
    ],
)
def test_badInput_invalidInput(runner: Run, args: list[int], reason: str) -> None:
    result = runner("two", args)
    assert result.status == Status.INVALID_INPUT and reason in result.reason


def test_malformedConfig_templateError(runner: Run) -> None:
    result = runner("bad-config", [100, 1, 8])
    assert result.status == Status.TEMPLATE_ERROR
    assert "ConfigError: [config] sources[0]: path 'data..amount': cannot parse" in result.reason


def test_realManifest_everySourceParsesOnADeclaredHost() -> None:
    template = load_template(TEMPLATE)
    spec = importlib.util.spec_from_file_location("price_aggregate_main", TEMPLATE / "main.py")
    assert spec is not None and spec.loader is not None
    main = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = main  # dataclasses look their module up while the module runs
    spec.loader.exec_module(main)
    sources = main.load_sources(template.config)  # raises ConfigError on a bad entry or path
    assert [s.name for s in sources] == ["coinbase", "kraken", "bitstamp", "gemini", "coingecko"]
    assert template.http.max_requests >= len(sources)
    assert {urlsplit(s.url).hostname for s in sources} == set(template.http.hosts)
    assert all(urlsplit(s.url).scheme == "https" for s in sources)
