"""Retry-After is honoured, but never for longer than the cap: a call fails at once, saying so.

Against the real local OpenAI-compatible server (promptgate.testing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import openai  # noqa: F401  (imported here, so that no test times its import)
import pytest

from promptgate.config import parse_config
from promptgate.errors import ConfigError, ModelError
from promptgate.providers import ChatRequest, ModelClient
from promptgate.testing import OpenAITestServer

REQUEST = ChatRequest(model="gpt-test", messages=({"role": "user", "content": "hi"},))


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(llm: OpenAITestServer) -> None:
    llm.reset()


def _complete(llm: OpenAITestServer, **kwargs: float) -> tuple[float, object]:
    client = ModelClient(base_url=llm.base_url, api_key="k", backoff_s=0.01, **kwargs)  # type: ignore[arg-type]

    async def run() -> object:
        try:
            return await client.complete(REQUEST)
        except ModelError as exc:
            return exc
        finally:
            await client.aclose()

    started = time.monotonic()
    result = asyncio.run(run())
    return time.monotonic() - started, result


def test_retry_after_beyond_the_cap_fails_at_once_saying_so(llm: OpenAITestServer) -> None:
    llm.fail(429, retry_after=3600, times=5)
    took, result = _complete(llm)
    assert isinstance(result, ModelError)
    assert "rate limited: server asked to wait 3600 s, more than the 30 s cap" in str(result)
    assert "\n" not in str(result)
    assert took < 2.0 and llm.call_count == 1


def test_the_waits_of_one_call_are_capped_in_all(llm: OpenAITestServer) -> None:
    llm.fail(429, retry_after=0.4, times=10)
    took, result = _complete(llm, max_retry_wait_s=0.5)
    assert isinstance(result, ModelError)
    assert "more than the 1 s cap" in str(result), result
    # honoured twice (0.4 + 0.4 s), then refused: a third 0.4 s would pass 1 s in all
    assert 0.8 <= took < 2.0 and llm.call_count == 3


def test_the_cap_is_gate_max_retry_wait_s(tmp_path: Path) -> None:
    config = parse_config({"gate": {"max_retry_wait_s": 5}}, tmp_path, "promptgate.yaml")
    assert config.gate.max_retry_wait_s == 5.0
    with pytest.raises(ConfigError, match="gate.max_retry_wait_s: must be seconds"):
        parse_config({"gate": {"max_retry_wait_s": "soon"}}, tmp_path, "promptgate.yaml")
