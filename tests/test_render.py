"""render.py is the one renderer: a version compiled once (CompiledMessages, what the SDK's
Prompt keeps) renders exactly as render_messages does, outputs and errors alike, and the SDK
reaches templates only through render.py's public names."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import promptgate.sdk
from promptgate import render
from promptgate.errors import RenderError
from promptgate.render import CompiledMessages, render_messages, render_text

PARTIALS = {"tone": "Be {{ mood }}.", "bad": "{{ broken", "pinned@v2": "{% set v = 3 %}"}

CASES: list[tuple[str, dict[Any, Any]]] = [
    ("plain text\r\nsecond line\n", {}),
    ("{{ x }}", {"x": 1}),
    ("{{ x }}", {}),  # undefined
    ("{{ x }}", {1: "not a string key", "x": 1}),
    ('{% include "tone" %} {{ x }}', {"x": 1, "mood": "kind"}),
    ('{% include "tone" %}', {}),  # undefined inside the partial
    ('{% include "bad" %}', {}),  # a partial that does not compile
    ('{% include "missing" %}', {}),
    ('{% import "pinned@v2" as m %}{{ m.v }}', {}),
    ("{{ ''.__class__ }}", {}),
    ("{{ xs|map(attribute='__class__')|list }}", {"xs": [1]}),
    ("{{ 'a' * 10**7 }}", {}),
    ("{% for i in range(n) %}{{ i }}{% endfor %}", {"n": 10**6}),
    ("{{ x }", {}),  # does not compile
    ("{{ x|nope }}", {"x": 1}),
    ("{{ 1 / 0 }}", {}),
    ("{% for i in range(3) %}{{ loop.index }}{{ cycler('a', 'b').next() }}{% endfor %}", {}),
]


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except RenderError as exc:
        return ("RenderError", str(exc))


@pytest.mark.parametrize(("source", "variables"), CASES)
@pytest.mark.parametrize("includes", [None, PARTIALS])
def test_compiled_messages_render_exactly_as_render_messages(
    source: str, variables: dict[Any, Any], includes: dict[str, str] | None
) -> None:
    content = {
        "messages": [
            {"role": "system", "content": "S {{ x }}" if "x" in variables else "S"},
            {"role": "user", "name": "n", "content": source},
        ]
    }
    compiled = CompiledMessages(content, "p", includes)
    expected = _outcome(lambda: render_messages(content, variables, "p", includes))
    assert _outcome(lambda: compiled.render(variables)) == expected
    assert _outcome(lambda: compiled.render(variables)) == expected  # again: nothing kept
    text = _outcome(lambda: render_text(source, variables, "p: messages[1].content", includes))
    if isinstance(expected, list):
        assert text == expected[1]["content"]
    elif expected[1].startswith("p: messages[1]"):
        assert text == expected


def test_a_template_that_does_not_compile_fails_in_its_turn() -> None:
    content = {
        "messages": [{"role": "user", "content": "{{ a }}"}, {"role": "user", "content": "{{"}]
    }
    compiled = CompiledMessages(content, "p")  # no error yet: errors are render errors
    with pytest.raises(RenderError, match=r"^p: messages\[0\].content: 'a' is undefined$"):
        compiled.render({})
    with pytest.raises(RenderError, match=r"^p: messages\[1\].content: "):
        compiled.render({"a": 1})


def test_single_template_and_fresh_messages() -> None:
    compiled = CompiledMessages({"template": "hi {{ who }}"}, "t")
    assert compiled.render({"who": "you"}) == [{"role": "user", "content": "hi you"}]
    with pytest.raises(RenderError, match="^t: template: 'who' is undefined$"):
        compiled.render({})
    parts = [{"type": "text", "text": "kept"}]
    nested = CompiledMessages({"messages": [{"role": "user", "content": parts, "meta": {"a": 1}}]})
    first = nested.render({})
    assert first == [{"role": "user", "content": parts, "meta": {"a": 1}}]
    first[0]["content"][0]["text"] = "changed"
    first[0]["meta"]["a"] = 2
    assert nested.render({}) == [{"role": "user", "content": parts, "meta": {"a": 1}}]


def test_the_sdk_renders_only_through_render_public_names() -> None:
    public = {n for n in dir(render) if not n.startswith("_")}
    for path in Path(promptgate.sdk.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "jinja2" for a in node.names), path
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert module.split(".")[0] != "jinja2", path
                if module.split(".")[-1] == "render":
                    assert {a.name for a in node.names} <= public, path
                elif module in ("", "promptgate"):  # the module object would reach its privates
                    assert "render" not in {a.name for a in node.names}, path
