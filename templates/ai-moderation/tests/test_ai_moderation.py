"""ai-moderation through the real enclave and workers, with a loopback HTTP server playing the
OpenAI-compatible chat-completions endpoint.

The tests run a copy whose `[config] endpoint` and `[http] hosts` point at the loopback server
(same code, another template id).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from coprocessor.protocol import Status
from coprocessor.template import load_template
from coprocessor.testing import LoopbackHttp, Reply, RunResult, Seen, TemplateRunner

TEMPLATE = Path(__file__).resolve().parents[1]
API_KEY = "sk-test-" + "9" * 24
ROUTE = "/v1/chat/completions"

# What the fake model answers, by the text it is asked about.
MODEL_REPLIES = {
    "Good morning, everyone!": '{"allowed": true, "category": "none"}',
    "Buy cheap followers at scam.example": '  {"category": "spam", "allowed": false}\n',
    "I will hurt you": '```json\n{"allowed": false, "category": "violence"}\n```',
    "prose": 'Sure! Here is the JSON: {"allowed": true, "category": "none"}',
    "inconsistent": '{"allowed": true, "category": "hate"}',
    "unknown category": '{"allowed": false, "category": "rude"}',
    "string bool": '{"allowed": "false", "category": "spam"}',
    "extra key": '{"allowed": true, "category": "none", "reason": "fine"}',
    "array": '[true, "none"]',
}


def loopback_copy(destination: Path, endpoint: str) -> Path:
    """The template copied to `destination` with its endpoint and `[http] hosts` on the loopback server."""
    shutil.copytree(TEMPLATE, destination, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    manifest = destination / "template.toml"
    text = manifest.read_text()
    text, hosts = re.subn(r"(?m)^hosts = .*$", 'hosts = ["127.0.0.1:*"]', text)
    text, endpoints = re.subn(r"(?m)^endpoint = .*$", f'endpoint = "{endpoint}"', text)
    assert hosts == endpoints == 1
    manifest.write_text(text)
    return destination


def chat_completions(seen: Seen) -> Reply:
    """A minimal OpenAI-compatible endpoint: the reply depends on the text in the user message."""
    request = json.loads(seen.body)
    text = json.loads(request["messages"][1]["content"].split("\n", 1)[1])
    if text == "upstream down":
        return Reply.json({"error": {"message": "The server is overloaded", "type": "server_error"}}, status=503)
    if text == "no choices":
        return Reply.json({"object": "chat.completion", "choices": []})
    content = MODEL_REPLIES[text]
    return Reply.json({"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackHttp]:
    with LoopbackHttp() as http:
        http.routes[ROUTE] = chat_completions
        yield http


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, server: LoopbackHttp) -> Path:
    return loopback_copy(tmp_path_factory.mktemp("ai-moderation") / "ai-moderation", server.url(ROUTE))


@pytest.fixture(scope="module")
def runner(folder: Path) -> Iterator[TemplateRunner]:
    with TemplateRunner(folder, secrets={"OPENAI_API_KEY": API_KEY}) as runner:
        yield runner


def moderate(runner: TemplateRunner, text: str) -> RunResult:
    return runner.run("ai-moderation", [text])


def test_acceptableText_allowed_requestAsConfigured(runner: TemplateRunner, server: LoopbackHttp) -> None:
    assert moderate(runner, "Good morning, everyone!").values == (True, 0, "none")
    seen = server.seen[-1]
    assert seen.method == "POST" and seen.path == ROUTE
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    request = json.loads(seen.body)
    assert request["model"] == "gpt-4o-mini" and request["temperature"] == 0
    assert request["response_format"] == {"type": "json_object"}
    assert request["messages"][0]["role"] == "system" and "exactly one JSON object" in request["messages"][0]["content"]
    assert request["messages"][1]["content"].endswith('"Good morning, everyone!"')


def test_blockedText_categoryIndexAndName(runner: TemplateRunner) -> None:
    assert moderate(runner, "Buy cheap followers at scam.example").values == (False, 7, "spam")
    assert moderate(runner, "I will hurt you").values == (False, 3, "violence")  # code fence tolerated


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("prose", "ModelReplyError: reply is not a JSON object"),
        ("inconsistent", "ModelReplyError: reply is inconsistent: allowed=True with category 'hate'"),
        ("unknown category", "ModelReplyError: reply has allowed=False, category='rude'"),
        ("string bool", "ModelReplyError: reply has allowed='false'"),
        ("extra key", "ModelReplyError: reply must have exactly the keys allowed and category"),
        ("array", "ModelReplyError: reply must have exactly the keys"),
        ("no choices", "UpstreamError: response has no choices[0].message.content"),
        ("upstream down", "UpstreamError: HTTP 503 from the endpoint: The server is overloaded"),
    ],
)
def test_offSchemaOrFailedReply_templateError(runner: TemplateRunner, text: str, reason: str) -> None:
    result = moderate(runner, text)
    assert result.status == Status.TEMPLATE_ERROR
    assert result.reason.startswith(reason)


def test_missingSecret_templateErrorWithoutCalling(folder: Path, server: LoopbackHttp) -> None:
    before = len(server.seen)
    with TemplateRunner(folder) as keyless:
        result = moderate(keyless, "Good morning, everyone!")
    assert result.status == Status.TEMPLATE_ERROR
    assert "has not bound secret 'OPENAI_API_KEY'" in result.reason
    assert len(server.seen) == before


@pytest.mark.parametrize(("text", "reason"), [("x" * 4001, "text is 4001 characters; at most 4000"), (" \n", "text is empty")])
def test_overLongOrEmptyText_invalidInputWithoutCalling(
    runner: TemplateRunner, server: LoopbackHttp, text: str, reason: str
) -> None:
    before = len(server.seen)
    result = moderate(runner, text)
    assert result.status == Status.INVALID_INPUT and result.reason == reason
    assert len(server.seen) == before


def test_longestText_accepted(runner: TemplateRunner) -> None:
    MODEL_REPLIES["y" * 4000] = '{"allowed": false, "category": "spam"}'
    assert moderate(runner, "y" * 4000).values == (False, 7, "spam")


def test_realManifest_reachesOnlyItsEndpointWithItsSecret() -> None:
    template = load_template(TEMPLATE)
    assert template.secrets == ("OPENAI_API_KEY",)
    assert template.http.hosts == (urlsplit(template.config["endpoint"]).hostname,) == ("api.openai.com",)
    assert urlsplit(template.config["endpoint"]).scheme == "https"
