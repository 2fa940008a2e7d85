"""The edit form of the web UI (README: web UI): a new version, or a new prompt.

Routes (editor; errors as HTML pages like ui.py's):
  GET  /prompts/{name}/edit[?v=N][&view=yaml]  POST same   the form, filled with version N (else
                                                           latest), as fields (ui_form.py) or YAML
  GET  /new[?view=yaml]  POST /new                         a new prompt
A POST with `form-action` (yaml, form, add, remove-N) only redraws the page: switching views or
adding and removing messages keeps what was typed and saves nothing. Errors come back inline
beside their field (the text box in the YAML view) with the edit kept, never a 500; a template
variable nothing provides is a warning first ("Save anyway"). The Try panel's route is in
ui_try.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from ..domain import PromptVersion
from ..errors import BadInput, PromptgateError
from ..promptfile import parse_prompt_text
from ..registry import push_specs
from ..suites import load_suites
from .formvalues import whole_number
from .ui import Posted, Ui, UiRoute, _check_name, _pick, page, posted, prompt_yaml
from .ui_edit import WHERE as EDIT_WHERE
from .ui_edit import (
    MissingVariable,
    TypedInput,
    case_choices,
    missing_variables,
    plain_error,
    typed_inputs,
)
from .ui_form import (
    Draft,
    FormProblem,
    PromptForm,
    data_yaml,
    field_error,
    form_data,
    form_of_content,
    read_draft,
    yaml_to_form,
)

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
    form: PromptForm | None = None,
    field_errors: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The edit page: the form view when `form` is given, else the YAML view of `text`."""
    latest = ui.state.store.history(name)[-1] if name is not None else None
    suites = _suites_of(ui, name) if name is not None else []
    fields: list[TypedInput] = []
    if latest is not None:
        try:
            content = parse_prompt_text(text, where=EDIT_WHERE).content
        except PromptgateError:  # the draft does not parse: the saved prompt's inputs
            content = latest.content
        fields = typed_inputs(latest.name, content, upstream_contents(ui))
    return ui.render(
        "edit.html",
        status=422 if error or field_errors else 200,
        form=form,
        field_errors=field_errors or {},
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
        typed_fields=fields,
        **extra,
    )


def upstream_contents(ui: Ui) -> dict[str, Mapping[str, Any]]:
    """Each prompt's content as the Try panel runs it upstream: at the gate's label, else the
    latest version."""
    store = ui.state.store
    _, at_label = store.snapshot(ui.state.settings.config.gate.label)
    return {
        n: v.content for n, v in {**{v.name: v for v in store.list_prompts()}, **at_label}.items()
    }


def _suites_of(ui: Ui, name: str) -> list[Any]:
    config = ui.state.settings.config
    try:
        return load_suites(config.root / config.evals).get(name, [])
    except PromptgateError:  # a broken suite is the gate's to report, not the editor's
        return []


def _problem(
    ui: Ui,
    name: str | None,
    draft: Draft,
    message: str,
    problem: str,
    base: PromptVersion | None,
    **extra: Any,
) -> Response:
    """The page again with `problem` beside its field (form view) or above the text box."""
    if draft.form is not None:
        found = field_error(problem)
        if found is not None:
            return _edit_form(
                ui,
                name,
                draft.text,
                message,
                base=base,
                form=draft.form,
                field_errors=dict([found]),
                **extra,
            )
    return _edit_form(
        ui,
        name,
        draft.text,
        message,
        error=plain_error(problem),
        base=base,
        form=draft.form,
        **extra,
    )


def _form_problem(
    ui: Ui,
    name: str | None,
    draft: Draft,
    message: str,
    exc: FormProblem,
    base: PromptVersion | None,
) -> Response:
    if exc.field is None:
        return _edit_form(
            ui, name, draft.text, message, error=exc.message, base=base, form=draft.form
        )
    return _edit_form(
        ui,
        name,
        draft.text,
        message,
        base=base,
        form=draft.form,
        field_errors={exc.field: exc.message},
    )


def _redraw(
    ui: Ui, name: str | None, fields: Mapping[str, str], base: PromptVersion | None
) -> Response:
    """A `form-action` post: switch views, add or remove a message; nothing is saved."""
    action = fields.get("form-action", "")
    draft = read_draft(fields, name)
    message = fields.get("message", "")
    if action == "form":
        try:
            form = yaml_to_form(draft.text, name)
        except FormProblem as exc:
            return _edit_form(ui, name, draft.text, message, error=exc.message, base=base)
        return _edit_form(ui, name, draft.text, message, base=base, form=form)
    if draft.problem is not None:
        return _form_problem(ui, name, draft, message, draft.problem, base)
    if action == "yaml" or draft.form is None:
        return _edit_form(ui, name, draft.text, message, base=base)
    data = form_data(draft.form, fields.get("yaml", ""))
    messages = data.get("messages")
    if isinstance(messages, list):
        if action == "add":
            messages.append({"role": "user", "content": ""})
        elif action.startswith("remove-"):
            at = whole_number(action[len("remove-") :])
            if at is not None and at < len(messages):
                del messages[at]
    form = form_of_content(draft.form.name, {k: v for k, v in data.items() if k != "name"})
    return _edit_form(ui, name, data_yaml(data), message, base=base, form=form)


def _save(
    ui: Ui,
    name: str | None,
    draft: Draft,
    message: str,
    confirm: str = "",
    base: PromptVersion | None = None,
) -> Response:
    """Validate the YAML (the form view's, built from its fields) and push it as a new version;
    errors go back into the form, beside their field.

    A variable nothing provides is a warning first: the form comes back with it named and a
    "Save anyway" button, which posts `confirm` with the names it was shown."""
    assert ui.user is not None
    if draft.problem is not None:
        return _form_problem(ui, name, draft, message, draft.problem, base)
    text = draft.text
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
            return _edit_form(ui, name, text, message, missing=missing, base=base, form=draft.form)
        [result] = push_specs(ui.state.store, [spec], message=message.strip(), author=ui.user.name)
    except PromptgateError as exc:
        return _problem(ui, name, draft, message, str(exc), base)
    ui.state.hub.notify()
    outcome = "new" if result.created else "same"
    return ui.redirect(f"/prompts/{quote(spec.name)}?v={result.version.version}&saved={outcome}")


def _first_view(ui: Ui, name: str | None, text: str, view: str | None, **extra: Any) -> Response:
    """The form view, unless the YAML view is asked for or the form cannot show the prompt."""
    form = None
    if view != "yaml":
        try:
            form = yaml_to_form(text, name)
        except FormProblem:
            form = None
    return _edit_form(ui, name, text, form=form, **extra)


@router.get("/prompts/{name}/edit")
def edit_form(
    name: str,
    v: int | None = Query(default=None, ge=1),
    view: str | None = None,
    ui: Ui = page("editor"),
) -> Response:
    """The form, filled with version `v` (the one the prompt page showed), else the latest."""
    base = _pick(ui.state.store.history(_check_name(name)), v, -1)
    return _first_view(ui, name, prompt_yaml(name, base.content), view, base=base)


@router.post("/prompts/{name}/edit")
def edit_save(name: str, form: Posted = posted("editor")) -> Response:
    history = form.ui.state.store.history(_check_name(name))  # 404 for an unknown prompt
    given = form.get("base")
    base = _pick(history, whole_number(given), -1)
    if form.get("form-action"):
        return _redraw(form.ui, name, form.fields, base)
    draft = read_draft(form.fields, name)
    return _save(form.ui, name, draft, form.get("message"), form.get("confirm"), base=base)


@router.get("/new")
def new_form(view: str | None = None, ui: Ui = page("editor")) -> Response:
    return _first_view(ui, None, NEW_PROMPT, view)


@router.post("/new")
def new_save(form: Posted = posted("editor")) -> Response:
    if form.get("form-action"):
        return _redraw(form.ui, None, form.fields, None)
    draft = read_draft(form.fields, None)
    return _save(form.ui, None, draft, form.get("message"), form.get("confirm"))
