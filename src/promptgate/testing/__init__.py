"""A real, local, OpenAI-compatible HTTP server for tests, benchmarks and CI.

Why this exists
---------------
promptgate talks to models through the ``openai`` client.  Its own tests, its
benchmarks and its users' CI pipelines need a model endpoint that is fast,
free, deterministic and able to misbehave on demand (errors, rate limits,
garbage bodies, slowness).  Monkeypatching the client would skip exactly the
code we want to exercise (HTTP, retries, timeouts, connection pooling,
response parsing), so instead this module runs a genuine HTTP/1.1 server on
127.0.0.1 that speaks the chat-completions protocol.  Code under test only
ever receives a ``base_url``.

The server is pure standard library: an ``asyncio`` protocol running on its
own event loop in a background daemon thread.  It supports keep-alive,
pipelining, ``Content-Length`` and chunked request bodies, and handles
thousands of requests per second; simulated latency is an ``asyncio.sleep``
so hundreds of slow requests can be in flight at once.

Usage
-----
::

    import re
    import openai
    from promptgate.testing import OpenAITestServer, Reply, tool_call

    with OpenAITestServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        out = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hello"}]
        )
        assert out.choices[0].message.content == "[gpt-test] hello"

        server.reply("weather", tool_calls=[tool_call("get_weather", {"city": "Paris"})])
        server.reply(re.compile(r"\\bsum\\b"), lambda body: "42")
        server.reply("quiz", chance(0.8, "right", "wrong", seed="trial-1"))
        server.fail(429, retry_after=1)      # the next request is rate limited
        server.malformed()                   # ... then one gets a body that is not JSON
        server.slow(5.0)                     # ... then one stalls for 5 s
        server.latency = 0.2                 # every request takes >= 200 ms
        assert server.call_count == 1 and server.requests[0].body["model"] == "gpt-test"
        server.reset()                       # forget requests, counters, rules and faults
        client.close()

For pytest, start one server per module/session and ``reset()`` it between tests.

From a shell (e.g. in CI)::

    python -m promptgate.testing --port 8000 --latency 0.05 --script rules.yaml
    # prints http://127.0.0.1:8000/v1 on stdout, serves until SIGINT/SIGTERM

``--port 0`` picks a free port.  The ``--script`` file (YAML, or JSON if it ends
in ``.json``) is a list of reply rules, each
``{match, content, tool_calls?, latency?, regex?}`` (``regex: true`` compiles
``match``; without ``match`` a rule matches everything)::

    - match: "capital of France"
      content: "Paris"
    - match: "^weather"
      regex: true
      tool_calls: [{name: get_weather, arguments: {city: Oslo}}]

Endpoints
---------
``POST /v1/chat/completions``
    Non-streaming only: a request with ``"stream": true`` gets a 400 error.
``GET /v1/models`` and ``GET /v1/models/{id}``
    Lists ``OpenAITestServer.models``.

How a chat request is answered
------------------------------
1. The request is logged (:attr:`OpenAITestServer.requests`) and counted.
2. Invalid requests (body not a JSON object, no ``model`` string, no
   ``messages`` list, ``stream: true``) get a 400 error.
3. The first pending fault (:meth:`~OpenAITestServer.fail`,
   :meth:`~OpenAITestServer.malformed`, :meth:`~OpenAITestServer.slow`, in the
   order they were added) whose ``match`` accepts the request is consumed; a
   request consumes at most one fault.
4. The reply comes from the first :meth:`~OpenAITestServer.reply` rule that
   matches, else from the ``responder`` (if it returns ``None`` we fall
   through), else the **default reply**, which is a pure function of the
   request::

       "[" + model + "] " + <text of the last user message>

5. The response is sent after ``latency`` seconds (a rule's own ``latency``
   replaces the server's; a ``slow`` fault adds to it).

Matching (``match=`` everywhere): ``None`` matches everything; a ``str`` is a
substring of the *conversation text* (the text of every message's content,
joined with ``"\\n"``); a compiled regex is ``search``-ed in that text; a
callable receives the parsed request body and returns a bool.

Token usage is deterministic: ``prompt_tokens`` is the number of
whitespace-separated words in the conversation text, ``completion_tokens`` the
number of words in the reply content plus in each tool call's arguments
string; :class:`Reply` can override both.

If a responder, rule callable or matcher raises, the request gets a 500 whose
message names the exception.  If the client disconnects (e.g. it timed out on a
``slow`` request), its pending answer is dropped and stops counting in
:attr:`~OpenAITestServer.in_flight`.

Responders, rule callables and matchers run on the server's event-loop thread:
they must not block (use ``latency``/``slow`` to simulate slowness).
"""

from __future__ import annotations

from .cli import _load_script as _load_script
from .cli import main
from .rules import Body as Body
from .rules import Content as Content
from .rules import Matcher as Matcher
from .rules import RecordedRequest, Reply, default_reply_text, tool_call
from .rules import Responder as Responder
from .rules import chance as chance
from .server import OpenAITestServer

__all__ = [
    "OpenAITestServer",
    "RecordedRequest",
    "Reply",
    "default_reply_text",
    "main",
    "tool_call",
]
