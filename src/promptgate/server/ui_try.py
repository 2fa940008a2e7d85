"""The Try panel (README: web UI): run an unsaved edit on a suite case or on inputs typed into the
panel, beside production's output.

The draft runs through the real chain: its `from:` inputs are produced by running the upstream
prompts at the gate's label (production; the latest version where the label is not set), and
the same case runs on production's version of the prompt. Nothing is stored but the model
responses, cached in the registry exactly as the gate caches them, so trying again or gating the
same text later costs no call.

Route (editor): POST /prompts/{name}/try {yaml (or the form view's fields), message, case, base,
csrf; try-with=inputs and in-NAME for typed inputs}: the edit form again, the edit and the typed
values kept, with the panel under it. A typed `from:` input is used as typed; left empty, its
upstream prompt runs on the other typed values. Errors (the YAML, rendering, the model) show
in the panel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from ..config import Config
from ..errors import PromptgateError
from ..gate import client_from_config, pinned_partials, side_includes
from ..promptfile import PromptSpec, parse_prompt_text, prompt_inputs
from ..providers import StoreCache
from ..runner import PromptAt, Runner, Side
from ..store import Store
from ..suites import Case, Suite
from .formvalues import whole_number
from .ui import Posted, UiRoute, _check_name, _pick, posted
from .ui_edit import WHERE, plain_error, typed_inputs, typed_values
from .ui_editor import _edit_form, _suites_of, upstream_contents
from .ui_form import read_draft

router = APIRouter(
    route_class=UiRoute, include_in_schema=False, default_response_class=HTMLResponse
)


@dataclass(frozen=True)
class Upstream:
    """An input produced by running another prompt first."""

    input: str
    prompt: str
    version: str
    output: str = ""
    error: str | None = None


@dataclass(frozen=True)
class SideRun:
    """One side's run of the case: the version it ran, the upstream outputs it was fed."""

    version: str
    output: str = ""
    error: str | None = None
    cached: bool = False
    upstream: tuple[Upstream, ...] = ()


@dataclass(frozen=True)
class Trial:
    """What the Try panel shows."""

    case: Case  # a suite's case, or (typed) the inputs typed into the panel
    suite: str
    label: str
    candidate: SideRun
    baseline: SideRun | None  # None: the prompt is not at the label
    asserts: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    typed: bool = False


def _find_case(suites: Sequence[Suite], value: str) -> tuple[Suite, Case] | None:
    index, _, case_id = value.partition(":")
    at = whole_number(index)
    if at is None or at >= len(suites):
        return None
    suite = suites[at]
    return next(((suite, c) for c in suite.cases if c.id == case_id), None)


def _sides(store: Store, label: str, spec: PromptSpec) -> tuple[Side, Side, bool]:
    """(candidate side, baseline side, whether the prompt is at the label)."""
    _, at_label = store.snapshot(label)
    latest = {v.name: v for v in store.list_prompts()}
    base: dict[str, PromptAt] = {}
    for name, v in {**latest, **at_label}.items():
        base[name] = PromptAt(name, v.version, v.content, v.content_hash)
    draft = PromptAt(spec.name, None, spec.content, spec.content_hash)
    return {**base, spec.name: draft}, base, spec.name in at_label


async def _run_side(
    runner: Runner, side: Side, name: str, case: Case, includes: Mapping[str, str]
) -> SideRun:
    prompt = side[name]
    values = dict(case.vars)
    upstream: list[Upstream] = []
    try:
        for spec in prompt_inputs(prompt.content).values():
            if spec.source and spec.name not in values:
                source = side.get(spec.source)
                version = source.label if source else "none"
                try:
                    made = await runner.output(side, spec.source, case.vars, 0, True, includes)
                except PromptgateError as exc:
                    upstream.append(Upstream(spec.name, spec.source, version, error=str(exc)))
                    raise
                upstream.append(Upstream(spec.name, spec.source, version, made.output))
                values[spec.name] = made.output
        response = await runner.output(side, name, values, 0, includes=includes)
    except PromptgateError as exc:
        return SideRun(prompt.label, error=str(exc), upstream=tuple(upstream))
    return SideRun(prompt.label, response.output, cached=response.cached, upstream=tuple(upstream))


def try_case(store: Store, config: Config, spec: PromptSpec, suite: Suite, case: Case) -> Trial:
    """Run the draft and the label's version on one case, through their chains."""
    return _trial(store, config, spec, case, str(suite.path.name))


def try_inputs(store: Store, config: Config, spec: PromptSpec, values: Mapping[str, str]) -> Trial:
    """Run the draft and the label's version on inputs typed into the panel: a `from:` input
    typed is used as it is, one left out is produced by running its upstream prompt."""
    return _trial(store, config, spec, Case(id="your inputs", vars=dict(values), asserts=()), "")


def _trial(store: Store, config: Config, spec: PromptSpec, case: Case, suite: str) -> Trial:
    label = config.gate.label
    candidate_side, baseline_side, at_label = _sides(store, label, spec)
    pinned = pinned_partials(store, [*candidate_side.values(), *baseline_side.values()])
    includes_of = {
        "candidate": side_includes(candidate_side, pinned),
        "baseline": side_includes(baseline_side, pinned),
    }

    async def run() -> tuple[SideRun, SideRun | None]:
        client = client_from_config(config, cache=StoreCache(store))
        runner = Runner(client, config.judge)
        try:
            jobs = [_run_side(runner, candidate_side, spec.name, case, includes_of["candidate"])]
            if at_label:
                jobs.append(
                    _run_side(runner, baseline_side, spec.name, case, includes_of["baseline"])
                )
            done = await asyncio.gather(*jobs)
        finally:
            await client.aclose()
        return done[0], (done[1] if at_label else None)

    candidate, baseline = asyncio.run(run())
    return Trial(case, suite, label, candidate, baseline, case.asserts, typed=not suite)


@router.post("/prompts/{name}/try")
def try_edit(name: str, form: Posted = posted("editor")) -> Response:
    ui = form.ui
    history = ui.state.store.history(_check_name(name))
    given = form.get("base")
    base = _pick(history, whole_number(given), -1)
    draft = read_draft(form.fields, name)
    text, message = draft.text, form.get("message")
    suites = _suites_of(ui, name)
    found = _find_case(suites, form.get("case"))
    typing = form.get("try-with") == "inputs"
    trial: Trial | None = None
    problem: str | None = None
    try:
        if draft.problem is not None:
            raise PromptgateError(draft.problem.message)
        spec = parse_prompt_text(text, where=WHERE)
        if spec.name != name:
            raise PromptgateError(f"this form edits {name!r}, but the YAML names {spec.name!r}")
        if typing:
            inputs = typed_inputs(spec.name, spec.content, upstream_contents(ui))
            values = typed_values(form.fields, inputs)
            trial = try_inputs(ui.state.store, ui.state.settings.config, spec, values)
        elif found is None:
            raise PromptgateError("choose a case of the suite to try the edit on")
        else:
            trial = try_case(ui.state.store, ui.state.settings.config, spec, *found)
    except PromptgateError as exc:
        problem = plain_error(str(exc))
    return _edit_form(
        ui,
        name,
        text,
        message,
        base=base,
        form=draft.form,
        trial=trial,
        trial_error=problem,
        picked=form.get("case"),
        typed={k[3:]: v for k, v in form.fields.items() if k.startswith("in-")},
    )
