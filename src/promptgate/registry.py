"""Registry operations the CLI, the server and the SDK share: push, resolve, label moves,
rollback and diff, on top of the store. Validation happens before anything is written."""

from __future__ import annotations

import difflib
import getpass
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from .domain import AuditEvent, LabelMove, PendingPush, PromptVersion, PushResult
from .errors import BadInput, GraphError, PromptFileError, ProtectedLabel, UnknownRef
from .graph import Graph, build_graph
from .promptfile import PromptSpec, discover_prompt_files, includes, is_partial, load_prompt_file
from .refs import Ref, check_label_name, parse_ref
from .resolved import Resolution, resolve_version
from .store import LATEST, Registry


def default_author() -> str:
    """--author, else PROMPTGATE_AUTHOR, else the git user, else the OS user."""
    env = os.environ.get("PROMPTGATE_AUTHOR")
    if env:
        return env
    try:
        name = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=2
        ).stdout.strip()
        if name:
            return name
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def load_specs(paths: Sequence[Path]) -> list[PromptSpec]:
    """Load and validate every prompt file; two files naming one prompt is an error."""
    specs: list[PromptSpec] = []
    seen: dict[str, str] = {}
    for path in discover_prompt_files(list(paths)):
        spec = load_prompt_file(path)
        if spec.name in seen:
            raise PromptFileError(
                f"{path}: prompt {spec.name!r} is also defined in {seen[spec.name]}"
            )
        seen[spec.name] = str(path)
        specs.append(spec)
    if not specs:
        raise BadInput("no prompt files found in " + ", ".join(str(p) for p in paths))
    return specs


def check_graph_with(store: Registry, specs: Iterable[PromptSpec], label: str = LATEST) -> None:
    """The graph of the label's versions with `specs` substituted must be acyclic and closed,
    and every pinned include (`tone@v3`) a stored partial."""
    contents: dict[str, Any] = {v.name: v.content for v in store.list_at_label(label)}
    specs = list(specs)
    for spec in specs:
        contents[spec.name] = spec.content
    build_graph(contents)
    _check_pinned_includes(store, contents, [s.name for s in specs])


def _check_pinned_includes(store: Registry, contents: Mapping[str, Any], names: list[str]) -> None:
    """Every pinned include (`tone@v3`) reached from `names` is a stored partial, and no chain
    of includes, pinned ones and those inside pinned partials included, comes back on itself
    (a render would never end)."""
    edges: list[tuple[str, str]] = []
    todo = [(n, contents[n]) for n in names]
    seen: set[str] = set()
    while todo:
        node, content = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        for name, version in sorted(includes(content), key=str):
            if version is None:
                edges.append((node, name))
                if name in contents:
                    todo.append((name, contents[name]))
                continue
            key = f"{name}@v{version}"
            try:
                pinned = store.get_version(name, version)
            except UnknownRef:
                raise GraphError(
                    f'{node}: {{% include "{key}" %}} names no stored version'
                ) from None
            if not is_partial(pinned.content):
                raise GraphError(f'{node}: {{% include "{key}" %}}: not a partial')
            edges.append((node, key))
            todo.append((key, pinned.content))
    graph: Graph = nx.DiGraph(edges)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    path = [edge[0] for edge in cycle] + [cycle[0][0]]
    raise GraphError("include cycle: " + " -> ".join(path))


def push_specs(
    store: Registry, specs: Sequence[PromptSpec], *, message: str, author: str
) -> list[PushResult]:
    check_graph_with(store, specs)
    return store.push(
        [PendingPush(s.name, s.content, s.content_hash) for s in specs],
        message=message,
        author=author,
    )


def push_paths(
    store: Registry, paths: Sequence[Path], *, message: str, author: str
) -> list[PushResult]:
    """Validate every file, check the graph, then store all of them in one transaction."""
    if not message.strip():
        raise BadInput("a change message is required (-m)")
    return push_specs(store, load_specs(paths), message=message, author=author)


def resolve(store: Registry, ref: Ref | str) -> PromptVersion:
    """The stored version a ref names; drafts are not stored and are refused here."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if ref.is_draft:
        raise BadInput(f"{ref}: a draft file is not a stored version: push it first")
    assert ref.name is not None
    if ref.version is not None:
        return store.get_version(ref.name, ref.version)
    return store.resolve(ref.name, ref.label or LATEST)


@dataclass(frozen=True)
class LabelPolicy:
    """Which labels only promote and rollback may move."""

    protected: frozenset[str]

    def check_direct_move(self, label: str) -> None:
        if label == LATEST:
            raise BadInput("`latest` moves only on push")
        if label in self.protected:
            raise ProtectedLabel(
                f"label {label!r} is protected: move it with `promote` or `rollback`"
            )


def set_label(
    store: Registry,
    ref: str,
    label: str,
    *,
    policy: LabelPolicy,
    actor: str,
    reason: str,
    expect: int | None | str = "any",
) -> AuditEvent | None:
    """Move an unprotected label to the ref's version, by CAS when `expect` is given.

    `expect` is a version number, None (the label must be unset) or "any" (whatever it holds
    now). Returns the audit event, or None when the label already pointed there.
    """
    check_label_name(label)
    policy.check_direct_move(label)
    target = resolve(store, ref)
    if not is_partial(target.content):
        users = includers_at(store, target.name, label)
        if users:
            raise BadInput(
                f"{target.ref} is not a partial, and {', '.join(users)} at {label} include "
                f"{target.name}: they could not render"
            )
    current = store.label_version(target.name, label) if expect == "any" else expect
    assert current is None or isinstance(current, int)
    events = store.move_labels(
        [LabelMove(target.name, label, target.version, current, reason)], actor=actor
    )
    return events[0] if events else None


def remove_label(
    store: Registry, name: str, label: str, *, policy: LabelPolicy, actor: str, reason: str
) -> AuditEvent:
    check_label_name(label)
    policy.check_direct_move(label)
    return store.remove_label(name, label, expect=None, actor=actor, reason=reason)


def rollback_target(history: Sequence[AuditEvent], current: int | None, to: int | None) -> int:
    """Pure: where a rollback goes. Default: the version the label held before its last move;
    with `to`, any version the label pointed at before (one that was proven)."""
    moves = [e for e in history if e.type in ("move", "push")]
    if to is not None:
        held = {e.to_version for e in moves if e.to_version is not None}
        if to not in held or to == current:
            raise BadInput(f"v{to} is not a version this label held before")
        return to
    if not moves or moves[-1].from_version is None or current is None:
        raise BadInput("the label has no earlier version to roll back to")
    return moves[-1].from_version


def rollback(
    store: Registry, name: str, label: str, *, to: int | None, actor: str, reason: str
) -> AuditEvent:
    """Move a label back at once (protected labels included), audited as a rollback."""
    check_label_name(label)
    if label == LATEST:
        raise BadInput("`latest` moves only on push")
    if not store.exists(name):
        raise UnknownRef(f"unknown prompt {name!r}")
    current = store.label_version(name, label)
    if current is None:
        raise UnknownRef(f"unknown ref {name}@{label}: label {label!r} is not set")
    target = rollback_target(store.label_moves(name, label), current, to)
    details: dict[str, Any] = {"rollback": True}
    if is_partial(store.get_version(name, current).content):
        details["renders"] = includers_at(store, name, label)  # what the rollback changes
    events = store.move_labels(
        [LabelMove(name, label, target, current, reason)], actor=actor, details=details
    )
    return events[0]


def includers_at(store: Registry, partial: str, label: str) -> list[str]:
    """The prompts at `label` that render `partial` at that label (directly or through other
    partials): what a move of the partial's label changes."""
    at = {v.name: v for v in store.list_at_label(label)}

    def lookup(name: str, version: int | None) -> PromptVersion | None:
        return at.get(name) if version is None else store.get_version(name, version)

    def uses(v: PromptVersion) -> bool:
        r = resolve_version(v, label, lookup)
        return partial in r.missing or any(i.include == partial for i in r.includes)

    return sorted(v.name for v in at.values() if not is_partial(v.content) and uses(v))


def _template_text(content: dict[str, Any]) -> list[str]:
    if "template" in content:
        return ["template:", *content["template"].splitlines()]
    out: list[str] = []
    for i, m in enumerate(content["messages"]):
        out.append(f"[{i}] {m['role']}:")
        out.extend(str(m.get("content", "")).splitlines())
    return out


def text_diff(
    a: PromptVersion | PromptSpec, b: PromptVersion | PromptSpec, a_name: str, b_name: str
) -> str:
    """Unified diff of the template or messages text."""
    return "\n".join(
        difflib.unified_diff(
            _template_text(a.content), _template_text(b.content), a_name, b_name, lineterm=""
        )
    )


def includes_diff(a: Resolution, b: Resolution) -> dict[str, dict[str, Any]]:
    """The included partials that differ between two resolved prompts: {include: {from, to,
    text}}, `from`/`to` the partial versions (None where a side does not include it) and
    `text` the unified diff of their text."""
    left = {i.include: i for i in a.includes}
    right = {i.include: i for i in b.includes}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(left) | set(right)):
        x, y = left.get(key), right.get(key)
        if x is not None and y is not None and x.content_hash == y.content_hash:
            continue
        a_name = f"{x.name}@v{x.version}" if x else "(not included)"
        b_name = f"{y.name}@v{y.version}" if y else "(not included)"
        lines = difflib.unified_diff(
            (x.template if x else "").splitlines(),
            (y.template if y else "").splitlines(),
            a_name,
            b_name,
            lineterm="",
        )
        out[key] = {
            "from": a_name if x else None,
            "to": b_name if y else None,
            "text": "\n".join(lines),
        }
    return out


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Structured difference of everything but the text (model, parameters, tools, inputs...),
    via deepdiff, as plain JSON: {path: {"from": x, "to": y}}."""
    from deepdiff import DeepDiff

    strip = ("messages", "template")
    left = {k: v for k, v in a.items() if k not in strip}
    right = {k: v for k, v in b.items() if k not in strip}
    diff = DeepDiff(left, right, verbose_level=2)
    out: dict[str, Any] = {}
    for kind, entries in diff.to_dict().items():
        if isinstance(entries, dict):
            for path, change in entries.items():
                path = path.replace("root", "", 1)
                if kind.endswith("_added"):
                    out[path] = {"from": None, "to": change}
                elif kind.endswith("_removed"):
                    out[path] = {"from": change, "to": None}
                else:
                    out[path] = {"from": change.get("old_value"), "to": change.get("new_value")}
        else:  # set-like reports (e.g. type changes without values)
            for path in entries:
                out[str(path).replace("root", "", 1)] = {"change": kind}
    return dict(sorted(out.items()))
