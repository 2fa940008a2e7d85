"""Prompt files (`prompts/<name>.yaml`): loading, strict validation and normalisation.

A version's *content* is everything in the file but `name`, normalised so that two files that
mean the same behaviour hash the same: `model.provider` defaults to "openai", and empty
`tools`, `inputs`, `description` and a null `response_format` are left out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .canonical import canonical_json, content_hash
from .errors import PromptFileError
from .limits import MAX_MESSAGES, MAX_MODEL_KEYS, MAX_PROMPT_FILE_BYTES, MAX_TEMPLATE_CHARS
from .modelparams import ParamProblem, check_model_params, response_format_problem
from .render import TemplateProblem, template_includes, template_variables
from .yamlload import KeyPath, Located, load_yaml_file, parse_yaml

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
INPUT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TOP_KEYS = {
    "name",
    "description",
    "model",
    "messages",
    "template",
    "inputs",
    "tools",
    "response_format",
    "partial",
}
PARTIAL_KEYS = {"name", "description", "template", "partial"}
INCLUDE_RE = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})(?:@v([1-9][0-9]*))?$")
MODEL_RESERVED = {"provider", "name"}
PROVIDERS = {"openai"}
ROLES = {"system", "user", "assistant", "developer", "tool"}
MESSAGE_KEYS = {"role", "content", "name"}
INPUT_KEYS = {"from", "default", "description"}


@dataclass(frozen=True)
class InputSpec:
    """One input of a prompt: fed by another prompt's output (`source`), a default, or the case."""

    name: str
    source: str | None = None
    has_default: bool = False
    default: Any = None


@dataclass(frozen=True)
class PromptSpec:
    """A validated prompt: its name, normalised content and hash, and where it came from."""

    name: str
    content: dict[str, Any]
    content_hash: str
    path: str | None = None


def _fail(doc: Located, key: KeyPath, message: str) -> PromptFileError:
    field = ".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in key).replace(".[", "[")
    prefix = f"{doc.where(key)}: " + (f"{field}: " if field else "")
    return PromptFileError(prefix + message)


def _check_template(doc: Located, key: KeyPath, source: Any) -> None:
    if not isinstance(source, str):
        raise _fail(doc, key, f"must be a string, not {type(source).__name__}")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise _fail(
            doc,
            key,
            f"template is {len(source):,} characters; the limit is {MAX_TEMPLATE_CHARS:,}",
        )
    try:
        template_variables(source)
        refs = template_includes(source)
    except TemplateProblem as exc:
        raise _fail(doc, key, str(exc)) from None
    for ref in sorted(refs):
        if not INCLUDE_RE.match(ref):
            raise _fail(doc, key, f"include {ref!r}: name a partial, as `tone` or `tone@v3`")


def _json_value(doc: Located, key: KeyPath, value: Any) -> None:
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        raise _fail(doc, key, "must be plain JSON data (no dates, NaN or binary)") from None


def _validate_model(doc: Located, model: Any) -> dict[str, Any]:
    if not isinstance(model, Mapping):
        raise _fail(doc, ("model",), "must be a mapping with at least `name`")
    if not isinstance(model.get("name"), str) or not model.get("name"):
        raise _fail(doc, ("model",), "`name` is required (the model to call)")
    provider = model.get("provider", "openai")
    if provider not in PROVIDERS:
        raise _fail(
            doc,
            ("model", "provider"),
            f"unknown provider {provider!r} (known: {', '.join(sorted(PROVIDERS))})",
        )
    if len(model) > MAX_MODEL_KEYS:
        raise _fail(
            doc, ("model",), f"{len(model):,} keys; the limit is {MAX_MODEL_KEYS:,} parameters"
        )
    out = dict(model)
    out["provider"] = provider
    for k in out:
        if not isinstance(k, str):
            raise _fail(doc, ("model",), f"parameter names must be strings, not {k!r}")
    try:
        check_model_params(out)
    except ParamProblem as exc:
        raise _fail(doc, ("model", exc.key), str(exc)) from None
    _json_value(doc, ("model",), out)
    return out


def _validate_messages(doc: Located, messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _fail(doc, ("messages",), "must be a non-empty list of {role, content}")
    if len(messages) > MAX_MESSAGES:
        raise _fail(
            doc, ("messages",), f"{len(messages):,} messages; the limit is {MAX_MESSAGES:,}"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise _fail(doc, ("messages", i), "must be a mapping with `role` and `content`")
        unknown = set(m) - MESSAGE_KEYS
        if unknown:
            raise _fail(doc, ("messages", i, sorted(unknown)[0]), "unknown key")
        if m.get("role") not in ROLES:
            raise _fail(
                doc,
                ("messages", i, "role"),
                f"must be one of {', '.join(sorted(ROLES))}, not {m.get('role')!r}",
            )
        if "content" not in m:
            raise _fail(doc, ("messages", i), "`content` is required")
        _check_template(doc, ("messages", i, "content"), m["content"])
    return [dict(m) for m in messages]


def _validate_inputs(doc: Located, inputs: Any) -> dict[str, Any]:
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise _fail(doc, ("inputs",), "must be a mapping of input name to {from|default}")
    out: dict[str, Any] = {}
    for name, spec in inputs.items():
        key: KeyPath = ("inputs", name)
        if not isinstance(name, str) or not INPUT_RE.match(name):
            raise _fail(doc, key, f"bad input name {name!r}")
        if spec is None:
            out[name] = {}
            continue
        if not isinstance(spec, Mapping):
            raise _fail(doc, key, "must be a mapping such as {from: extract} or {default: 60}")
        unknown = set(spec) - INPUT_KEYS
        if unknown:
            raise _fail(doc, (*key, sorted(unknown)[0]), "unknown key (use from, default)")
        if "from" in spec:
            if not isinstance(spec["from"], str) or not NAME_RE.match(spec["from"]):
                raise _fail(doc, (*key, "from"), f"must name a prompt, not {spec['from']!r}")
            if "default" in spec:
                raise _fail(doc, key, "an input takes `from` or `default`, not both")
        _json_value(doc, key, dict(spec))
        out[name] = dict(spec)
    return out


def _validate_tools(doc: Located, tools: Any) -> list[Any]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _fail(doc, ("tools",), "must be a list of OpenAI tool definitions")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type") != "function"
            or not (isinstance(fn, Mapping) and isinstance(fn.get("name"), str))
        ):
            raise _fail(doc, ("tools", i), "must be {type: function, function: {name, ...}}")
    _json_value(doc, ("tools",), tools)
    return list(tools)


def _validate_response_format(doc: Located, rf: Any) -> Any:
    if rf is None:
        return None
    problem = response_format_problem(rf)
    if problem is not None:
        raise _fail(doc, ("response_format",), problem)
    _json_value(doc, ("response_format",), rf)
    return dict(rf)


def validate_prompt(doc: Located) -> PromptSpec:
    """Validate parsed YAML as a prompt file and return its normalised spec."""
    data = doc.data
    if not isinstance(data, Mapping):
        raise PromptFileError(f"{doc.path}: a prompt file must be a YAML mapping")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise _fail(doc, (unknown[0],), f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _fail(doc, ("name",), f"required, and must match {NAME_RE.pattern}, not {name!r}")
    if "partial" in data:
        return _validate_partial(doc, name)
    if ("messages" in data) == ("template" in data):
        raise _fail(doc, (), "needs exactly one of `messages` or `template`")
    content: dict[str, Any] = {}
    description = data.get("description")
    if description not in (None, ""):
        if not isinstance(description, str):
            raise _fail(doc, ("description",), "must be a string")
        content["description"] = description
    content["model"] = _validate_model(doc, data.get("model"))
    if "template" in data:
        _check_template(doc, ("template",), data["template"])
        content["template"] = data["template"]
    else:
        content["messages"] = _validate_messages(doc, data["messages"])
    inputs = _validate_inputs(doc, data.get("inputs"))
    if inputs:
        content["inputs"] = inputs
    tools = _validate_tools(doc, data.get("tools"))
    if tools:
        content["tools"] = tools
    rf = _validate_response_format(doc, data.get("response_format"))
    if rf is not None:
        content["response_format"] = rf
    content = copy.deepcopy(content)
    return PromptSpec(name=name, content=content, content_hash=content_hash(content), path=doc.path)


def _validate_partial(doc: Located, name: str) -> PromptSpec:
    """`partial: true`: shared text (`template`) that prompts include; no model, no inputs of
    its own (its variables are the includer's), no suite."""
    data = doc.data
    if data["partial"] is not True:
        raise _fail(doc, ("partial",), "must be true (or left out for an ordinary prompt)")
    extra = sorted(k for k in data if k not in PARTIAL_KEYS)
    if extra:
        raise _fail(
            doc,
            (extra[0],),
            "a partial holds only name, description and template (it is "
            "included by prompts, which have the model and inputs)",
        )
    if "template" not in data:
        raise _fail(doc, (), "a partial needs its `template` text")
    _check_template(doc, ("template",), data["template"])
    content: dict[str, Any] = {"partial": True, "template": data["template"]}
    if data.get("description"):
        if not isinstance(data["description"], str):
            raise _fail(doc, ("description",), "must be a string")
        content["description"] = data["description"]
    return PromptSpec(name=name, content=content, content_hash=content_hash(content), path=doc.path)


def load_prompt_file(path: Path) -> PromptSpec:
    """Load and validate one prompt file."""
    try:
        doc = load_yaml_file(path)
    except ValueError as exc:
        raise PromptFileError(str(exc)) from None
    return validate_prompt(doc)


def parse_prompt_text(text: str, where: str = "<prompt>") -> PromptSpec:
    """Validate a prompt given as YAML text (the web UI's edit form)."""
    try:
        doc = parse_yaml(text, where)
    except ValueError as exc:
        raise PromptFileError(str(exc)) from None
    return validate_prompt(doc)


def validate_content(name: str, content: Mapping[str, Any], where: str = "<content>") -> PromptSpec:
    """Validate content given as data (an API body): the same rules as a file."""
    data = dict(content)
    try:
        size = len(canonical_json(data))
    except (TypeError, ValueError):
        size = 0  # validate_prompt names the value that is not JSON
    if size > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(
            f"{where}: content is {size:,} bytes; the limit is {MAX_PROMPT_FILE_BYTES:,}"
        )
    if "name" in data and data["name"] != name:
        raise PromptFileError(f"{where}: name {data['name']!r} does not match {name!r}")
    data["name"] = name
    return validate_prompt(Located(data=data, path=where))


def template_sources(content: Mapping[str, Any]) -> list[str]:
    """Every template string of a version, in order."""
    if "template" in content:
        return [content["template"]]
    return [m["content"] for m in content["messages"] if isinstance(m.get("content"), str)]


def prompt_inputs(content: Mapping[str, Any]) -> dict[str, InputSpec]:
    """All inputs: every variable the templates use plus those `inputs` declares."""
    declared = content.get("inputs", {})
    names: set[str] = set(declared)
    for source in template_sources(content):
        names |= template_variables(source)
    out: dict[str, InputSpec] = {}
    for n in sorted(names):
        spec = declared.get(n) or {}
        out[n] = InputSpec(
            name=n,
            source=spec.get("from"),
            has_default="default" in spec,
            default=spec.get("default"),
        )
    return out


def upstream_names(content: Mapping[str, Any]) -> set[str]:
    """The prompts whose output this content consumes (its `from:` edges)."""
    return {spec["from"] for spec in content.get("inputs", {}).values() if spec.get("from")}


def is_partial(content: Mapping[str, Any]) -> bool:
    return content.get("partial") is True


def includes(content: Mapping[str, Any]) -> set[tuple[str, int | None]]:
    """The partials this content's templates include: (name, None) follows the includer's
    label, (name, N) is pinned to version N."""
    out: set[tuple[str, int | None]] = set()
    for source in template_sources(content):
        for ref in template_includes(source):
            m = INCLUDE_RE.match(ref)
            if m is None:
                raise PromptFileError(f"include {ref!r}: name a partial, as `tone` or `tone@v3`")
            out.add((m.group(1), int(m.group(2)) if m.group(2) else None))
    return out


def included_names(content: Mapping[str, Any]) -> set[str]:
    """The partials included at the includer's label: the `include` edges of the graph."""
    return {name for name, version in includes(content) if version is None}


def discover_prompt_files(paths: list[Path]) -> list[Path]:
    """Expand folders into their *.yaml / *.yml files (sorted); files are kept as given."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]))
        elif p.exists():
            out.append(p)
        else:
            raise PromptFileError(f"{p}: no such file or folder")
    return out


def with_defaults(content: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The case's variables plus declared defaults for inputs it does not set."""
    out = dict(given)
    for name, spec in prompt_inputs(content).items():
        if name not in out and spec.has_default:
            out[name] = spec.default
    return out
