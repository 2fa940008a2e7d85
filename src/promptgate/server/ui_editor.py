"""The edit form of the web UI (DESIGN §7a): a new version, or a new prompt, from YAML.

Routes (editor; errors as HTML pages like ui.py's):
  GET  /prompts/{name}/edit[?v=N]  POST same     the form, filled with version N (else latest)
  GET  /new  POST /new                           a new prompt
Errors come back inline beside the text box with the text kept, never a 500; a template variable
nothing provides is a warning first ("Save anyway"). The Try panel's route is in ui_try.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from ..domain import PromptVersion
from ..errors import BadInput, PromptgateError
from ..promptfile import parse_prompt_text
from ..registry import push_specs
from ..suites import load_suites
from .ui import Posted, Ui, UiRoute, _check_name, _pick, page, posted, prompt_yaml
from .ui_edit import WHERE as EDIT_WHERE
from .ui_edit import MissingVariable, case_choices, missing_variables, plain_error

NEW_PROMPT = """\
name: my-prompt
description: What this prompt is for.
model:
  provider: openai
  name: gpt-4o-mini
  temperature: 0.2
messages:
  - role: system
    content: You are a helpful assistant.
  - role: user
    content: |
      {{ question }}
"""

router = APIRouter(
    route_class=UiRoute, include_in_schema=False, default_response_class=HTMLResponse
)


def _edit_form(
    ui: Ui,
    name: str | None,
    text: str,
    message: str = "",
    error: str | None = None,
    missing: list[MissingVariable] | None = None,
    base: PromptVersion | None = None,
    **extra: Any,
) -> Response:
    latest = ui.state.store.history(name)[-1] if name is not None else None
    suites = _suites_of(ui, name) if name is not None else []
    return ui.render(
        "edit.html",
        status=422 if error else 200,
        title=f"Edit {name}" if name else "New prompt",
        name=name,
        text=text,
        message=message,
        error=error,
        missing=missing or [],
        confirm=",".join(m.name for m in missing or []),
        base=base,
        latest=latest,
        cases=case_choices(suites),
        **extra,
    )


def _suites_of(ui: Ui, name: str) -> list[Any]:
    config = ui.state.settings.config
    try:
        return load_suites(config.root / config.evals).get(name, [])
    except PromptgateError:  # a broken suite is the gate's to report, not the editor's
        return []


def _save(
    ui: Ui,
    name: str | None,
    text: str,
    message: str,
    confirm: str = "",
    base: PromptVersion | None = None,
) -> Response:
    """Validate the YAML and push it as a new version; errors go back into the form.

    A variable nothing provides is a warning first: the form comes back with it named and a
    "Save anyway" button, which posts `confirm` with the names it was shown."""
    assert ui.user is not None
    try:
        if not message.strip():
            raise BadInput("a change message is required")
        spec = parse_prompt_text(text, where=EDIT_WHERE)
        if name is not None and spec.name != name:
            raise BadInput(f"this form edits {name!r}, but the YAML names {spec.name!r}")
        if name is None and ui.state.store.exists(spec.name):
            raise BadInput(f"a prompt named {spec.name!r} exists already: edit it instead")
        missing = missing_variables(
            spec, _suites_of(ui, spec.name), base.content if base is not None else None
        )
        if missing and confirm != ",".join(m.name for m in missing):
            return _edit_form(ui, name, text, message, missing=missing, base=base)
        [result] = push_specs(ui.state.store, [spec], message=message.strip(), author=ui.user.name)
    except PromptgateError as exc:
        return _edit_form(ui, name, text, message, error=plain_error(str(exc)), base=base)
    ui.state.hub.notify()
    outcome = "new" if result.created else "same"
    return ui.redirect(f"/prompts/{quote(spec.name)}?v={result.version.version}&saved={outcome}")


@router.get("/prompts/{name}/edit")
def edit_form(
    name: str, v: int | None = Query(default=None, ge=1), ui: Ui = page("editor")
) -> Response:
    """The form, filled with version `v` (the one the prompt page showed), else the latest."""
    base = _pick(ui.state.store.history(_check_name(name)), v, -1)
    return _edit_form(ui, name, prompt_yaml(name, base.content), base=base)


@router.post("/prompts/{name}/edit")
def edit_save(name: str, form: Posted = posted("editor")) -> Response:
    history = form.ui.state.store.history(_check_name(name))  # 404 for an unknown prompt
    given = form.get("base")
    base = _pick(history, int(given) if given.isdigit() else None, -1)
    return _save(
        form.ui, name, form.get("yaml"), form.get("message"), form.get("confirm"), base=base
    )


@router.get("/new")
def new_form(ui: Ui = page("editor")) -> Response:
    return _edit_form(ui, None, NEW_PROMPT)


@router.post("/new")
def new_save(form: Posted = posted("editor")) -> Response:
    return _save(form.ui, None, form.get("yaml"), form.get("message"), form.get("confirm"))
