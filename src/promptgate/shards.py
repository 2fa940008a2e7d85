"""One gate over many CI machines (README: shards).

`check --shard I/N` runs, for candidates and baselines alike, only the cases whose stable key
(SHA-256 of the prompt name and the case id) falls in shard I of N; suite digests stay those of
the whole files, so every shard names the same check. `merge_reports` joins the shards' JSON
reports into one and judges the merged cases once, by the rules of `verdict`, so that three
shards and one run give the same verdict.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import BadInput
from .policy import CompareSettings, parse_compare
from .report import SCHEMA_VERSION, judged_fields, suite_result_from_json, suite_summary
from .runner import SuiteResult
from .suites import Suite
from .verdict import judge

SHARD_RE = re.compile(r"^([1-9][0-9]*)/([1-9][0-9]*)$")


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (1-based) into (I, N); BadInput for anything else."""
    m = SHARD_RE.match(text.strip())
    if not m or int(m.group(1)) > int(m.group(2)):
        raise BadInput(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/3")
    return int(m.group(1)), int(m.group(2))


def shard_of(prompt: str, case_id: str, count: int) -> int:
    """The 1-based shard of a case: stable across machines, runs and case order."""
    digest = hashlib.sha256(f"{prompt}\0{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(suites: Sequence[Suite], index: int, count: int) -> list[Suite]:
    """The suites with only shard `index`'s cases (a suite may keep none)."""
    return [
        replace(s, cases=tuple(c for c in s.cases if shard_of(s.prompt, c.id, count) == index))
        for s in suites
    ]


def _identity(report: Mapping[str, Any]) -> tuple[Any, ...]:
    def suites(key: str) -> list[tuple[Any, Any, Any, Any]]:
        return sorted(
            (s.get("prompt"), s.get("path"), s.get("digest"), s.get("version"))
            for s in report.get(key) or []
        )

    return (
        report.get("label"),
        sorted(
            (c.get("name"), c.get("version"), c.get("content_hash")) for c in report["candidates"]
        ),
        sorted(
            (b.get("name"), b.get("version"), b.get("content_hash")) for b in report["baselines"]
        ),
        sorted(
            (u.get("name"), u.get("version"), u.get("content_hash"))
            for u in report.get("upstream") or []
        ),
        suites("suites"),
        suites("baseline_suites"),
    )


def _check_shards(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> int:
    """Refuse anything but one report of each shard of one check; returns N."""
    if not reports:
        raise BadInput("report merge: give the shards' JSON reports")
    for name, r in zip(names, reports, strict=True):
        if not isinstance(r, Mapping) or r.get("schema_version") != SCHEMA_VERSION:
            raise BadInput(f"{name}: not a promptgate JSON report (schema_version 1)")
        shard = r.get("shard")
        if not isinstance(shard, Mapping):
            raise BadInput(f"{name}: not a shard's report (it has no `shard`): nothing to merge")
        if not isinstance(r.get("candidates"), list) or not isinstance(r.get("baselines"), list):
            raise BadInput(f"{name}: the report has no candidates or baselines")
    for name, r in zip(names, reports, strict=True):
        index, count = r["shard"].get("index"), r["shard"].get("count")
        if type(index) is not int or type(count) is not int or not 1 <= index <= count:
            raise BadInput(f"{name}: its shard must be {{index, count}} with 1 <= index <= count")
    counts = {r["shard"].get("count") for r in reports}
    if len(counts) != 1:
        raise BadInput(
            f"report merge: the shards split the check differently (N = {sorted(counts)})"
        )
    count = counts.pop()
    seen: dict[Any, str] = {}
    for name, r in zip(names, reports, strict=True):
        index = r["shard"].get("index")
        if index in seen:
            raise BadInput(
                f"report merge: shard {index}/{count} given twice ({seen[index]}, {name})"
            )
        seen[index] = name
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        raise BadInput(
            f"report merge: shard{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'{i}/{count}' for i in missing)} missing"
        )
    first = _identity(reports[0])
    for name, r in zip(names[1:], reports[1:], strict=True):
        if _identity(r) != first:
            raise BadInput(
                f"{name}: judged other candidates, baselines or suite files than {names[0]}"
            )
    return int(count)


def _merged_suites(
    reports: Sequence[Mapping[str, Any]], key: str
) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in reports:
        for s in r.get(key) or []:
            k = (str(s["prompt"]), str(s["path"]))
            if k not in out:
                out[k] = {**s, "cases": [], "total": 0}
            ids = {c["id"] for c in out[k]["cases"]}
            for c in s["cases"]:
                if c["id"] in ids:
                    raise BadInput(f"report merge: case {c['id']} of {k[1]} is in two shards")
            out[k]["cases"] = out[k]["cases"] + list(s["cases"])
            out[k]["total"] += int(s.get("total") or 0)
    return out


def _results(entries: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, list[SuiteResult]]:
    results: dict[str, list[SuiteResult]] = {}
    for (name, path), entry in entries.items():
        results.setdefault(name, []).append(
            suite_result_from_json(
                entry,
                where=f"{name} ({path})",
                path=path,
                threshold=float(entry["threshold"]),
                repeat=int(entry["repeat"]),
            )
        )
    return results


@dataclass(frozen=True)
class Merged:
    """The merged report, and whether it lets labels move (the gate's `passed`)."""

    report: dict[str, Any]
    passed: bool


def merge_reports(reports: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Merged:
    """One report of the whole check from its shards' reports, judged once on the merged cases
    (BadInput for a missing, duplicated or foreign shard)."""
    count = _check_shards(reports, names)
    try:
        return _merge(reports, count)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput(
            f"report merge: a shard's report is malformed ({type(exc).__name__}: {exc})"
        ) from None


def _merge(reports: Sequence[Mapping[str, Any]], count: int) -> Merged:
    cand_entries = _merged_suites(reports, "suites")
    base_entries = _merged_suites(reports, "baseline_suites")
    candidate = _results(cand_entries)
    baseline = _results(base_entries)
    first = reports[0]
    settings = first.get("settings") or {}
    defaults = CompareSettings().with_overrides(
        parse_compare(settings.get("compare"), "settings.compare", BadInput)
    )

    def policy_of(name: str, path: str) -> CompareSettings:
        entry = cand_entries.get((name, path), {})
        return defaults.with_overrides(
            parse_compare(entry.get("compare"), f"{path}: compare", BadInput)
        )

    allowed_missing = bool(settings.get("allow_missing_suites"))
    problems = [
        p for p in first.get("problems") or [] if not ("no eval suite" in p and allowed_missing)
    ]
    budget = [
        f for r in reports for f in r.get("failures") or [] if f.startswith("budget exceeded")
    ]
    judgement = judge([*budget, *problems], policy_of, candidate, baseline)

    def in_order(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(cases, key=lambda c: (c.get("line") or 0, c["id"]))

    suites = [
        {
            **suite_summary(sr),
            **judged_fields(judgement.for_suite(name, sr.path)),
            "cases": in_order(cand_entries[(name, sr.path)]["cases"]),
        }
        for name, results in candidate.items()
        for sr in results
    ]
    stats: dict[str, Any] = {}
    for r in reports:
        for k, v in (r.get("stats") or {}).items():
            if k == "wall_s":
                stats[k] = max(float(stats.get(k, 0.0)), float(v or 0.0))
            elif v is None or stats.get(k, 0) is None:
                stats[k] = None
            else:
                stats[k] = stats.get(k, 0) + v
    merged = {
        **first,
        "verdict": judgement.verdict,
        "wall_s": max(float(r.get("wall_s") or 0.0) for r in reports),
        "failures": list(judgement.failures),
        "suites": suites,
        "baseline_suites": [
            {**suite_summary(sr), "cases": in_order(base_entries[(name, sr.path)]["cases"])}
            for name, results in baseline.items()
            for sr in results
        ],
        "stats": stats,
        "shard": None,
        "merged_from": [
            {"index": r["shard"]["index"], "count": count, "verdict": r.get("verdict")}
            for r in sorted(reports, key=lambda r: r["shard"]["index"])
        ],
    }
    return Merged(report=merged, passed=judgement.passed)
