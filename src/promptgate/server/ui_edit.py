"""Checks the edit form makes before it saves (README: web UI): errors in plain words, warnings.

Pure helpers, no routes: `plain_error` turns a prompt file error into a sentence that points at
the line of the text box, and `missing_variables` finds the template variables that nothing
provides (no `from:`, no default, and not set by the suite's cases), which would make every case
fail after the save.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..promptfile import PromptSpec, prompt_inputs
from ..suites import Suite

WHERE = "the prompt file"


def plain_error(message: str) -> str:
    """`the prompt file:5: messages[0].content: ...` -> `Line 5, messages[0].content: ...`."""
    found = re.match(re.escape(WHERE) + r":(\d+): (.*)", message, re.DOTALL)
    if found:
        return f"Line {found.group(1)} of the prompt file: {found.group(2)}"
    if message.startswith(WHERE + ": "):
        return message[len(WHERE) + 2 :]
    return message


@dataclass(frozen=True)
class MissingVariable:
    """A template variable no input default, `from:` or suite case provides."""

    name: str
    why: str


def missing_variables(
    spec: PromptSpec, suites: Sequence[Suite], base: Mapping[str, Any] | None
) -> list[MissingVariable]:
    """The variables of `spec` that nothing would provide.

    With suites for the prompt: each variable without a default or `from:` that some case does not
    set. Without suites: each such variable the version the edit started from did not use (a new
    one); a new prompt without suites has nothing to check against.
    """
    inputs = prompt_inputs(spec.content).values()
    free = [i.name for i in inputs if not i.source and not i.has_default]
    cases = [(s, c) for s in suites for c in s.cases]
    out: list[MissingVariable] = []
    if cases:
        for name in free:
            lacking = [c.id for _, c in cases if name not in c.vars]
            if lacking:
                more = f" and {len(lacking) - 3} more" if len(lacking) > 3 else ""
                shown = ", ".join(lacking[:3]) + more
                out.append(
                    MissingVariable(
                        name,
                        f"no default, and {len(lacking)} of {len(cases)} suite cases "
                        f"do not set it ({shown})",
                    )
                )
        return out
    if base is None:
        return out
    before = set(prompt_inputs(base))
    return [
        MissingVariable(name, "new in this edit, with no default, and the prompt has no suite")
        for name in free
        if name not in before
    ]


def case_choices(suites: Sequence[Suite]) -> list[tuple[str, str]]:
    """(value, text) for the case select: `suite index:case id`."""
    return [
        (f"{i}:{c.id}", f"{c.id} ({s.path.name})" if len(suites) > 1 else c.id)
        for i, s in enumerate(suites)
        for c in s.cases
    ]


@dataclass(frozen=True)
class TypedInput:
    """A field of the Try panel's typed inputs: an input of the prompt or of its upstream."""

    name: str
    prompt: str  # the prompt whose template uses it
    source: str | None = None  # `from:` this prompt; left empty, it is produced by running it
    default: str | None = None  # the default, as shown; left empty, it is used


def typed_inputs(
    name: str, content: Mapping[str, Any], others: Mapping[str, Mapping[str, Any]]
) -> list[TypedInput]:
    """Every input a person may type to try `content`: its own first, then those of the
    upstream prompts (in `others`) its `from:` inputs would run, each name once."""
    out: dict[str, TypedInput] = {}
    queue: list[tuple[str, Mapping[str, Any]]] = [(name, content)]
    seen = {name}
    while queue:
        prompt, body = queue.pop(0)
        for spec in prompt_inputs(body).values():
            if spec.name not in out:
                shown = None
                if spec.has_default:
                    shown = spec.default if isinstance(spec.default, str) else repr(spec.default)
                out[spec.name] = TypedInput(spec.name, prompt, spec.source, shown)
            if spec.source and spec.source not in seen and spec.source in others:
                seen.add(spec.source)
                queue.append((spec.source, others[spec.source]))
    return list(out.values())


def typed_values(fields: Mapping[str, str], inputs: Sequence[TypedInput]) -> dict[str, str]:
    """The values typed: an empty field with a `from:` or a default is left out (so upstream
    runs, or the default applies); any other field is used as typed, empty included."""
    values: dict[str, str] = {}
    for item in inputs:
        typed = fields.get(f"in-{item.name}", "").replace("\r\n", "\n")
        if typed or (item.source is None and item.default is None):
            values[item.name] = typed
    return values
