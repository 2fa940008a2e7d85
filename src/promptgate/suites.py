"""Eval suite files (`evals/**/*.yaml`): loading, strict validation and digests.

A suite belongs to one prompt. Cases are inline or in a file next to the suite (JSONL, CSV or
YAML). `defaults.assert` is merged into every case, like promptfoo's defaultTest. A suite's
digest is the SHA-256 of its file and its case file, so a report names exactly what it judged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SuiteError
from .limits import MAX_SUITE_FILE_BYTES
from .policy import parse_compare
from .promptfile import NAME_RE
from .yamlload import Located, load_yaml_file, parse_yaml

SUITE_KEYS = {"prompt", "description", "threshold", "repeat", "defaults", "cases", "compare"}
CASE_KEYS = {"id", "description", "vars", "assert", "threshold", "repeat"}
DEFAULT_KEYS = {"assert", "vars", "threshold"}


@dataclass(frozen=True, slots=True)
class Case:
    """One eval case: root input variables and the assertions its output must meet."""

    id: str
    vars: dict[str, Any]
    asserts: tuple[dict[str, Any], ...]
    threshold: float | None = None
    line: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Suite:
    """A validated suite for one prompt."""

    prompt: str
    path: Path
    cases: tuple[Case, ...]
    threshold: float = 1.0
    repeat: int = 1
    digest: str = ""
    description: str = ""
    # this suite's overrides of `gate.compare` (validated keys only)
    compare: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.path.parent


def _validate_asserts(items: Any, where: str) -> tuple[dict[str, Any], ...]:
    from .assertions import AssertionSpecError, validate_assertion

    if items is None:
        return ()
    if not isinstance(items, list):
        raise SuiteError(f"{where}: `assert` must be a list")
    out = []
    for i, spec in enumerate(items):
        if not isinstance(spec, Mapping):
            raise SuiteError(f"{where}: assert[{i}] must be a mapping with `type`")
        try:
            validate_assertion(spec)
        except AssertionSpecError as exc:
            raise SuiteError(f"{where}: assert[{i}]: {exc}") from None
        out.append(dict(spec))
    return tuple(out)


def _number(value: Any, where: str, lo: float, hi: float | None = None) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < lo
        or (hi is not None and value > hi)
    ):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise SuiteError(f"{where}: must be a number {bound}, not {value!r}")
    return float(value)


def _csv_cases(text: str, path: Path) -> list[dict[str, Any]]:
    """promptfoo's CSV layout: columns are vars; `__expected*` columns hold assertions written
    as `type: value` (a bare value means `equals`); `__description` and `__id` name the case."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _csv_rows(reader)
    except csv.Error as exc:
        raise SuiteError(f"{path}:{reader.line_num}: invalid CSV: {exc}") from None


def _csv_rows(reader: csv.DictReader[str]) -> list[dict[str, Any]]:
    rows = []
    for row in reader:
        case: dict[str, Any] = {"vars": {}, "assert": []}
        for key, value in row.items():
            if key is None:
                continue
            if key.startswith("__expected"):
                if value:
                    kind, sep, rest = value.partition(":")
                    if sep and kind.strip().replace("-", "").isalpha() and " " not in kind.strip():
                        case["assert"].append({"type": kind.strip(), "value": rest.strip()})
                    else:
                        case["assert"].append({"type": "equals", "value": value})
            elif key in ("__description", "__id"):
                case["id" if key == "__id" else "description"] = value
            else:
                case["vars"][key] = value
        rows.append(case)
    return rows


def _case_text(raw: bytes, path: Path) -> str:
    """A case file's text: UTF-8 without NUL bytes, or one line naming the first bad byte."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SuiteError(
            f"{path}:{line}: not UTF-8 text (byte {exc.start}); binary file?"
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise SuiteError(f"{path}:{line}: NUL byte in a case file; binary file?")
    return text


def _jsonl_items(text: str, path: Path) -> Iterator[Any]:
    """A JSONL file's cases one at a time, so that a big file's parsed lines are not all held
    beside the cases built from them."""
    for n, line in enumerate(io.StringIO(text), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise SuiteError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
            except RecursionError:
                raise SuiteError(f"{path}:{n}: JSON nested too deeply") from None


def _load_case_file(path: Path, where: str) -> tuple[Iterable[Any], bytes]:
    try:
        size = path.stat().st_size
        if size > MAX_SUITE_FILE_BYTES:
            raise SuiteError(
                f"{path}: case file is {size:,} bytes; the limit is {MAX_SUITE_FILE_BYTES:,}"
            )
        raw = path.read_bytes()
    except OSError:
        raise SuiteError(f"{where}: case file {path} not found") from None
    text = _case_text(raw, path)
    if path.suffix == ".jsonl":
        return _jsonl_items(text, path), raw
    if path.suffix == ".csv":
        return _csv_cases(text, path), raw
    if path.suffix in (".yaml", ".yml"):
        try:
            data = parse_yaml(text, str(path), MAX_SUITE_FILE_BYTES).data
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
        if not isinstance(data, list):
            raise SuiteError(f"{path}: a case file must hold a list of cases")
        return data, raw
    raise SuiteError(f"{where}: case file {path.name}: use .jsonl, .csv or .yaml")


def _case(
    doc: Located,
    raw: Any,
    index: int,
    defaults: Mapping[str, Any],
    default_asserts: tuple[dict[str, Any], ...],
    where: str,
    seen: set[str],
) -> Case:
    line = doc.line(("cases", index)) if isinstance(doc.data.get("cases"), list) else None
    at = f"{doc.path}:{line}" if line else f"{where} case {index + 1}"
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{at}: a case must be a mapping with `vars` and `assert`")
    unknown = sorted(set(raw) - CASE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(CASE_KEYS))
        raise SuiteError(f"{at}: unknown key {unknown[0]!r} (allowed: {allowed})")
    case_id = str(raw.get("id") or raw.get("description") or f"case-{index + 1}")
    if case_id in seen:
        raise SuiteError(f"{at}: duplicate case id {case_id!r}")
    seen.add(case_id)
    given = raw.get("vars")
    if given is not None and not isinstance(given, Mapping):
        raise SuiteError(f"{at}: `vars` must be a mapping, not {type(given).__name__}")
    variables = {**(defaults.get("vars") or {}), **(given or {})}
    asserts = default_asserts + _validate_asserts(raw.get("assert"), at)
    if not asserts:
        raise SuiteError(f"{at}: case {case_id!r} has no assertions (nothing could fail)")
    threshold = raw.get("threshold", defaults.get("threshold"))
    if threshold is not None:
        threshold = _number(threshold, f"{at}: threshold", 0.0, 1.0)
    if "repeat" in raw:
        raise SuiteError(f"{at}: `repeat` is set per suite")
    return Case(
        id=case_id,
        vars=variables,
        asserts=asserts,
        threshold=threshold,
        line=line,
        description=str(raw.get("description") or ""),
    )


def load_suite(path: Path) -> Suite:
    """Load and validate one suite file (and its case file)."""
    try:
        doc = load_yaml_file(path, MAX_SUITE_FILE_BYTES)
    except ValueError as exc:
        raise SuiteError(str(exc)) from None
    data = doc.data
    where = str(path)
    if not isinstance(data, Mapping):
        raise SuiteError(f"{where}: a suite must be a YAML mapping")
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{doc.where((unknown[0],))}: unknown key {unknown[0]!r}")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not NAME_RE.match(prompt):
        raise SuiteError(f"{doc.where(('prompt',))}: `prompt` must name a prompt")
    threshold = _number(
        data.get("threshold", 1.0), f"{doc.where(('threshold',))}: threshold", 0.0, 1.0
    )
    repeat = data.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 100:
        raise SuiteError(f"{doc.where(('repeat',))}: repeat must be a whole number 1..100")
    compare = parse_compare(data.get("compare"), f"{doc.where(('compare',))}: compare", SuiteError)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping) or set(defaults) - DEFAULT_KEYS:
        raise SuiteError(f"{doc.where(('defaults',))}: defaults may hold assert, vars, threshold")
    if not isinstance(defaults.get("vars") or {}, Mapping):
        raise SuiteError(f"{doc.where(('defaults', 'vars'))}: `vars` must be a mapping")
    digest = hashlib.sha256(path.read_bytes())
    cases_raw = data.get("cases")
    if isinstance(cases_raw, str):
        items, raw = _load_case_file(path.parent / cases_raw, doc.where(("cases",)))
        digest.update(b"\0" + raw)
    elif isinstance(cases_raw, list):
        items = cases_raw
    else:
        raise SuiteError(f"{doc.where(('cases',))}: `cases` must be a list or a case file path")
    # the defaults' assertions are checked once and shared by every case (read-only)
    default_asserts = _validate_asserts(defaults.get("assert"), f"{where} defaults")
    seen: set[str] = set()
    cases = tuple(
        _case(doc, raw, i, defaults, default_asserts, where, seen) for i, raw in enumerate(items)
    )
    if not cases:
        raise SuiteError(f"{doc.where(('cases',))}: a suite needs at least one case")
    return Suite(
        prompt=prompt,
        path=path,
        cases=cases,
        threshold=threshold,
        repeat=repeat,
        digest=digest.hexdigest(),
        description=str(data.get("description") or ""),
        compare=compare,
    )


def load_suites(folder: Path) -> dict[str, list[Suite]]:
    """Every suite under `folder`, by prompt. Case files (jsonl/csv/yaml lists) are skipped as
    suites when a suite refers to them."""
    if not folder.is_dir():
        return {}
    files = sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")])
    referenced: set[Path] = set()
    suites: dict[str, list[Suite]] = {}
    candidates = []
    for f in files:
        try:
            data = load_yaml_file(f, MAX_SUITE_FILE_BYTES).data
        except ValueError as exc:
            raise SuiteError(str(exc)) from None
        if isinstance(data, Mapping) and isinstance(data.get("cases"), str):
            referenced.add((f.parent / data["cases"]).resolve())
        candidates.append((f, data))
    for f, data in candidates:
        if f.resolve() in referenced or isinstance(data, list):
            continue
        suite = load_suite(f)
        suites.setdefault(suite.prompt, []).append(suite)
    return suites


def suites_digest(suites: Sequence[Suite]) -> str:
    return hashlib.sha256("".join(s.digest for s in suites).encode()).hexdigest()
