"""promptgate.testing.OpenAITestServer, exercised through the real ``openai`` client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from promptgate.testing import (
    OpenAITestServer,
    RecordedRequest,
    Reply,
    _load_script,
    default_reply_text,
    tool_call,
)

USER = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: OpenAITestServer) -> Iterator[None]:
    # a request a client timed out on may still be winding down on the server thread
    deadline = time.monotonic() + 2
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    server.reset()
    server.latency = 0.0
    yield
    server.latency = 0.0


@pytest.fixture(scope="module")
def client(server: OpenAITestServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
        yield c


def ask(client: openai.OpenAI, content: str = "hello world", model: str = "gpt-test", **kw):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **kw
    )


def test_base_url_and_models(server: OpenAITestServer, client: openai.OpenAI) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
    assert [m.id for m in client.models.list()] == server.models
    assert client.models.retrieve("gpt-test").id == "gpt-test"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    assert server.call_count == 0  # only chat requests are counted...
    assert [r.path for r in server.requests] == [
        "/v1/models",
        "/v1/models/gpt-test",
        "/v1/models/nope",
    ]  # ...all are logged


def test_default_reply(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(
        model="gpt-test",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello there world"},
        ],
    )
    assert out.object == "chat.completion"
    assert out.id.startswith("chatcmpl-")
    assert out.model == "gpt-test"
    choice = out.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "[gpt-test] hello there world"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    # whitespace word counts: prompt = 2 + 2 + 1 + 3 words, completion = 4 words
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.total_tokens) == (
        8,
        4,
        12,
    )
    assert default_reply_text({"model": "m", "messages": USER}) == "[m] hello world"


def test_scripted_rules(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.reply("capital of France", "Paris")
    server.reply(re.compile(r"\bsum\b"), lambda body: f"model={body['model']}")
    server.reply(
        lambda body: body.get("temperature") == 0,
        Reply("cold", finish_reason="length", completion_tokens=99),
    )
    server.reply("France", "never: an earlier rule wins")
    assert ask(client, "What is the capital of France?").choices[0].message.content == "Paris"
    assert ask(client, "the sum of it", model="m2").choices[0].message.content == "model=m2"
    out = ask(client, "x", temperature=0)
    assert out.choices[0].message.content == "cold"
    assert out.choices[0].finish_reason == "length"
    assert out.usage is not None and out.usage.completion_tokens == 99
    assert ask(client, "summary").choices[0].message.content == "[gpt-test] summary"


def test_tool_calls_reply(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.reply(
        "weather",
        tool_calls=[
            tool_call("get_weather", {"city": "Paris"}),
            {
                "id": "call_x",
                "type": "function",
                "function": {"name": "get_time", "arguments": '{"tz": "CET"}'},
            },
        ],
    )
    out = ask(client, "weather in Paris?")
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "tool_calls"
    assert msg.content is None
    assert msg.tool_calls is not None
    first, second = msg.tool_calls
    assert (first.id, first.type, first.function.name) == ("call_0", "function", "get_weather")
    assert json.loads(first.function.arguments) == {"city": "Paris"}
    assert (second.id, second.function.name) == ("call_x", "get_time")


def test_responder() -> None:
    def responder(body: dict) -> Reply | str | None:
        text = body["messages"][-1]["content"]
        if text == "fallthrough":
            return None
        if text == "boom":
            raise KeyError("oops")
        return Reply(content=text.upper(), prompt_tokens=1)

    with (
        OpenAITestServer(responder) as srv,
        openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as c,
    ):
        out = ask(c, "shout")
        assert out.choices[0].message.content == "SHOUT"
        assert out.usage is not None and out.usage.prompt_tokens == 1
        assert ask(c, "fallthrough").choices[0].message.content == "[gpt-test] fallthrough"
        with pytest.raises(openai.InternalServerError, match="KeyError"):
            ask(c, "boom")  # a bug in the responder surfaces as a 500 naming it


def test_fail_500(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.fail(500)
    with pytest.raises(openai.InternalServerError) as info:
        ask(client)
    assert info.value.status_code == 500
    assert set(info.value.body) >= {"message", "type", "code"}  # type: ignore[arg-type]
    assert ask(client).choices[0].message.content == "[gpt-test] hello world"  # times=1


def test_fail_429_retry_after_and_match(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.fail(429, retry_after=2, match="limited", times=2)
    server.fail(503, match=lambda body: body["model"] == "other", body='{"error": "custom"}')
    assert ask(client, "fine").choices[0].message.content == "[gpt-test] fine"
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            ask(client, "rate limited")
        assert info.value.response.headers["retry-after"] == "2"
        assert info.value.code == "rate_limit_exceeded"
    assert ask(client, "rate limited").choices[0].message.content  # exhausted
    with pytest.raises(openai.InternalServerError) as err:
        ask(client, model="other")
    assert err.value.status_code == 503
    assert err.value.response.text == '{"error": "custom"}'


def test_malformed_body(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.malformed()
    with pytest.raises((ValueError, openai.APIError)):  # json.JSONDecodeError today
        ask(client)
    assert ask(client).choices[0].message.content == "[gpt-test] hello world"


def test_slow_triggers_client_timeout(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.slow(2.0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=0.2))
    assert time.monotonic() - start < 1.5
    assert ask(client).choices[0].message.content  # times=1: back to normal


def test_faults_are_consumed_in_order(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.fail(500)
    server.fail(429)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    with pytest.raises(openai.RateLimitError):
        ask(client)
    assert ask(client).choices[0].message.content


def test_stream_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="[Ss]tream"):
        ask(client, stream=True)


def test_request_log_and_call_count(server: OpenAITestServer, client: openai.OpenAI) -> None:
    before = time.time()
    ask(client, "one", model="m1")
    ask(client, "two", model="m2", temperature=0.5)
    assert server.call_count == 2
    log = server.requests
    assert [r.body["model"] for r in log] == ["m1", "m2"]
    first = log[0]
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.body["messages"] == [{"role": "user", "content": "one"}]
    assert log[1].body["temperature"] == 0.5
    assert first.headers["authorization"] == "Bearer test"
    assert first.headers["Content-Type"] == "application/json"  # case-insensitive
    assert before <= first.received_at <= log[1].received_at <= time.time()
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.path = "/x"  # type: ignore[misc]
    log.clear()  # a snapshot: the server's log is untouched
    assert len(server.requests) == 2


def test_max_in_flight_concurrent_async(server: OpenAITestServer) -> None:
    server.latency = 0.2

    async def main() -> float:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as c:
            start = time.monotonic()
            outs = await asyncio.gather(
                *(
                    c.chat.completions.create(
                        model="gpt-test", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    for i in range(20)
                )
            )
            elapsed = time.monotonic() - start
        assert sorted(o.choices[0].message.content or "" for o in outs) == sorted(
            f"[gpt-test] q{i}" for i in range(20)
        )
        return elapsed

    elapsed = asyncio.run(main())
    assert elapsed >= 0.2
    assert elapsed < 1.0
    assert server.max_in_flight == 20
    assert server.call_count == 20
    assert server.in_flight == 0


def test_rule_latency_overrides(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.latency = 5.0
    server.reply("quick", "fast", latency=0.0)
    start = time.monotonic()
    assert ask(client, "quick").choices[0].message.content == "fast"
    assert time.monotonic() - start < 1.0


def test_reset_clears(server: OpenAITestServer, client: openai.OpenAI) -> None:
    server.reply("hello", "scripted")
    server.fail(500, times=3)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    server.reset()
    assert server.requests == []
    assert server.call_count == 0
    assert server.max_in_flight == 0
    # faults and rules are gone: the default reply is back
    assert ask(client).choices[0].message.content == "[gpt-test] hello world"
    assert server.call_count == 1


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_http_chunked_pipelined_and_errors(server: OpenAITestServer) -> None:
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "chunky"}]}).encode()
    chunked = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"5\r\n"
        + body[:5]
        + b"\r\n"
        + b"%x\r\n" % (len(body) - 5)
        + body[5:]
        + b"\r\n0\r\n\r\n"
    )
    last = b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = _raw(port, chunked + chunked + last)  # three pipelined requests, one connection
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert out.count(b'"content":"[m] chunky"') == 2
    assert b"HTTP/1.1 404" in out and b'"code":"unknown_url"' in out
    bad = _raw(
        port,
        b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{{{",
    )
    assert bad.startswith(b"HTTP/1.1 400") and b'"type":"invalid_request_error"' in bad
    assert server.call_count == 3


def test_script_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- match: capital\n  content: Paris\n"
        "- match: '^wea'\n  regex: true\n  tool_calls: [{name: get_weather, arguments: {}}]\n"
    )
    srv = OpenAITestServer()
    assert _load_script(srv, str(rules)) == 2
    with srv, openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as c:
        assert ask(c, "the capital?").choices[0].message.content == "Paris"
        calls = ask(c, "weather").choices[0].message.tool_calls
        assert calls is not None and calls[0].function.name == "get_weather"


def test_cli_prints_base_url_and_serves(tmp_path: Path) -> None:
    script = tmp_path / "rules.json"
    script.write_text(json.dumps([{"match": "ping", "content": "pong"}]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptgate.testing", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        req = urllib.request.Request(
            base_url + "/chat/completions",
            method="POST",
            data=json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.load(resp)["choices"][0]["message"]["content"] == "pong"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0
