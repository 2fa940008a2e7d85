"""The form view of the edit page (README: web UI): the parts people change, as fields.

A prompt with `messages` shows one text box per message with its role; a `template` prompt one
text box; both show the description and the common model parameters (model name, temperature,
max_tokens). Everything else (inputs, tools, response_format, other model parameters, a message's
`name`) travels unchanged in the page as the YAML the form started from, and the server lays the
fields over it: the form view and the YAML view submit the same YAML to the same save. Pure
helpers, no routes: ui_editor.py and ui_try.py read drafts with `read_draft`.

Posted fields of the form view: `view=form`, `yaml` (the YAML underneath), `f-name` (new prompts
only), `f-description`, `f-model`, `f-temperature`, `f-max-tokens`, `f-template` or `f-count` with
`f-role-N` and `f-content-N` (N from 0).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..limits import MAX_PROMPT_FILE_BYTES
from ..yamlload import parse_yaml
from .formvalues import whole_number
from .ui import prompt_yaml
from .ui_edit import WHERE, plain_error

ROLES = ("system", "user", "assistant")
MAX_FORM_MESSAGES = 200


@dataclass(frozen=True)
class MessageField:
    """One message of the form: its role and its text."""

    role: str
    content: str


@dataclass(frozen=True)
class PromptForm:
    """What the form view shows, as the strings typed (a number stays text until it is saved)."""

    name: str
    description: str = ""
    model: str = ""
    temperature: str = ""
    max_tokens: str = ""
    template: str | None = None  # a `template` prompt; else `messages`
    messages: tuple[MessageField, ...] = ()
    kept: tuple[str, ...] = ()  # keys the form does not show, saved unchanged

    @property
    def roles(self) -> tuple[str, ...]:
        """The role choices: the three usual ones and any other a message already has."""
        extra = [m.role for m in self.messages if m.role not in ROLES]
        return (*ROLES, *dict.fromkeys(extra))


class FormProblem(Exception):
    """A field the form cannot turn into the prompt file, with the field's id (None: the page)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Draft:
    """A posted edit: its YAML (built from the fields in the form view) and, there, the form."""

    text: str
    form: PromptForm | None = None  # None: the YAML view
    problem: FormProblem | None = None  # the form view's fields could not be turned into YAML


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _kept(content: Mapping[str, Any]) -> tuple[str, ...]:
    shown = {"name", "description", "model", "template", "messages"}
    out = [k for k in content if k not in shown]
    model = content.get("model")
    if isinstance(model, Mapping):
        out += [
            f"model.{k}"
            for k in model
            if k not in ("name", "temperature", "max_tokens", "provider")
        ]
    for i, m in enumerate(content.get("messages") or []):
        if isinstance(m, Mapping):
            out += [f"messages[{i}].{k}" for k in m if k not in ("role", "content")]
    return tuple(out)


def form_of_content(name: str, content: Mapping[str, Any]) -> PromptForm:
    """The form for a prompt's content; FormProblem when the form cannot show it faithfully."""
    model = content.get("model")
    model = model if isinstance(model, Mapping) else {}
    base = PromptForm(
        name=name,
        description=_text(content.get("description")),
        model=_text(model.get("name")),
        temperature=_text(model.get("temperature")),
        max_tokens=_text(model.get("max_tokens")),
        kept=_kept(content),
    )
    if "template" in content:
        if not isinstance(content["template"], str):
            raise FormProblem(None, "the template is not text: edit it as YAML")
        return replace(base, template=content["template"])
    messages = content.get("messages")
    if messages is None:
        messages = []
    if not isinstance(messages, list):
        raise FormProblem(None, "`messages` is not a list: edit it as YAML")
    fields = []
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("content", ""), str):
            raise FormProblem(None, "a message holds more than text: edit it as YAML")
        fields.append(MessageField(_text(m.get("role") or "user"), m.get("content", "")))
    return replace(base, messages=tuple(fields))


def _posted(fields: Mapping[str, str], key: str) -> str:
    return fields.get(key, "").replace("\r\n", "\n")


def form_of_posted(fields: Mapping[str, str], name: str | None) -> PromptForm:
    """The form as it was posted (`name`: the prompt the page edits; None for a new one)."""
    n = min(whole_number(fields.get("f-count", "")) or 0, MAX_FORM_MESSAGES)
    is_template = "f-template" in fields
    return PromptForm(
        name=name if name is not None else fields.get("f-name", "").strip(),
        description=_posted(fields, "f-description"),
        model=fields.get("f-model", "").strip(),
        temperature=fields.get("f-temperature", "").strip(),
        max_tokens=fields.get("f-max-tokens", "").strip(),
        template=_posted(fields, "f-template") if is_template else None,
        messages=()
        if is_template
        else tuple(
            MessageField(fields.get(f"f-role-{i}", "user"), _posted(fields, f"f-content-{i}"))
            for i in range(n)
        ),
    )


def _number(field: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        words = "a whole number, such as 300" if kind is int else "a number, such as 0.2"
        raise FormProblem(field, f"must be {words}, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise FormProblem(field, f"must be a number, not {text!r}")
    return value


def _shown(value: Any) -> str | None:
    """How the form shows a stored number (None: nothing stored)."""
    return None if value is None else str(value)


def form_data(form: PromptForm, underneath: str) -> dict[str, Any]:
    """The prompt file the form makes: its fields laid over the YAML it started from, whose
    other keys (inputs, tools, other model parameters, a message's extra keys) stay as they are.
    """
    try:
        base = _load(underneath) if underneath.strip() else {}
    except ValueError:
        base = None
    if not isinstance(base, dict):
        raise FormProblem(None, "the YAML underneath this form is broken: edit it as YAML")
    data: dict[str, Any] = dict(base)
    data["name"] = form.name
    if form.description.strip():
        data["description"] = form.description
    else:
        data.pop("description", None)
    model = dict(base["model"]) if isinstance(base.get("model"), dict) else {}
    partial = base.get("partial") is True and not model
    if not partial:  # a partial has no model of its own: nothing to lay over
        model["name"] = form.model
        for key, field, text, kind in (
            ("temperature", "temperature", form.temperature, float),
            ("max_tokens", "max-tokens", form.max_tokens, int),
        ):
            if not text:
                model.pop(key, None)
            elif text != _shown(model.get(key)):  # unchanged text keeps its value (1 stays 1)
                model[key] = _number(field, text, kind)
        data["model"] = model
    if form.template is not None:
        data["template"] = form.template
        data.pop("messages", None)
    else:
        given = base.get("messages")
        old: list[Any] = given if isinstance(given, list) else []
        messages = []
        for i, m in enumerate(form.messages):
            extra = old[i] if i < len(old) and isinstance(old[i], dict) else {}
            messages.append({**extra, "role": m.role, "content": m.content})
        data["messages"] = messages
        data.pop("template", None)
    return data


def _load(text: str) -> Any:
    """YAML from the page, loaded with the prompt file's bounds (size, depth, aliases)."""
    return parse_yaml(text, WHERE, MAX_PROMPT_FILE_BYTES).data


def data_yaml(data: Mapping[str, Any]) -> str:
    name = data.get("name")
    return prompt_yaml(str(name or ""), {k: v for k, v in data.items() if k != "name"})


def read_draft(fields: Mapping[str, str], name: str | None) -> Draft:
    """The posted edit, from whichever view posted it."""
    underneath = fields.get("yaml", "")
    if fields.get("view") != "form":
        return Draft(underneath)
    form = form_of_posted(fields, name)
    try:
        data = form_data(form, underneath)
        return Draft(data_yaml(data), replace(form, kept=_kept(data)))
    except FormProblem as exc:
        return Draft(underneath, form, exc)


def yaml_to_form(text: str, name: str | None) -> PromptForm:
    """The YAML view's text as a form (switching views); FormProblem if it cannot be shown."""
    try:
        data = _load(text)
    except ValueError as exc:
        raise FormProblem(None, plain_error(str(exc)) + " (fix it to see the form)") from None
    if not isinstance(data, dict):
        raise FormProblem(None, "the prompt file must be a YAML mapping")
    own = name if name is not None else _text(data.get("name"))
    return form_of_content(own, {k: v for k, v in data.items() if k != "name"})


_PATH = re.compile(re.escape(WHERE) + r"(?::\d+)?: ([A-Za-z_][\w.\[\]-]*): (.*)", re.DOTALL)


def field_error(message: str) -> tuple[str, str] | None:
    """(field id, the sentence) for a prompt file error the form view can put beside a field."""
    found = _PATH.match(message)
    if not found:
        return None
    path, text = found.group(1), found.group(2)
    item = re.match(r"messages\[(\d+)\](?:\.(\w+))?$", path)
    if item:
        return (
            f"role-{item.group(1)}" if item.group(2) == "role" else f"content-{item.group(1)}"
        ), text
    fields = {
        "name": "name",
        "description": "description",
        "template": "template",
        "messages": "messages",
        "model": "model",
        "model.name": "model",
        "model.temperature": "temperature",
        "model.max_tokens": "max-tokens",
    }
    return (fields[path], text) if path in fields else None
