"""The template sandbox refuses unsafe attributes however a template reaches them."""

from __future__ import annotations

import json

import pytest
from conftest import Project

from promptgate.errors import RenderError
from promptgate.render import render_text

THROUGH_FILTERS = [
    "{{ who|map(attribute='__class__')|list }}",
    "{{ who|map(attribute='__class__')|list|length }}",
    "{{ who|map(attribute='__init__')|list }}",
]


@pytest.mark.parametrize("template", THROUGH_FILTERS)
def test_unsafe_attribute_through_a_filter_raises(template: str) -> None:
    """map(attribute=...) got an Undefined back from the sandbox and printed "[Undefined]"."""
    with pytest.raises(RenderError, match="sandbox refused: access to attribute '__"):
        render_text(template, {"who": ["a", "b"]})


def test_safe_attributes_through_filters_still_render() -> None:
    assert render_text("{{ xs|map(attribute='real')|list }}", {"xs": [1, 2]}) == "[1, 2]"


def test_cli_render_of_map_class_is_one_line_exit_2(project: Project) -> None:
    template = THROUGH_FILTERS[0]
    project.write(
        "prompts/x.yaml", f"name: x\nmodel: {{name: m}}\ntemplate: {json.dumps(template)}\n"
    )
    assert project.run("push", "-m", "m", "prompts/x.yaml").exit_code == 0
    result = project.run("render", "x", "--var", "who=me")
    assert result.exit_code == 2, result.stdout
    assert "sandbox refused" in result.stderr and "Undefined" not in result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
