"""What a pull request asks the gate to judge: changed files in, gate refs out.

Why this module exists
----------------------
A CI job knows which files a pull request touched, not which prompts to judge. The mapping is
small but easy to get subtly wrong in shell, so it lives here, pure and unit-tested, and the
GitHub composite action (``.github/actions/promptgate``) calls it through a tiny entry point::

    python -m promptgate.ci refs --base origin/main [--label production]
    python -m promptgate.ci config prompts|evals|registry|label

The rules (README, "In CI": a pull request checks its changed prompt files as draft
refs and stores nothing):

- A changed or added prompt file is judged as a **draft**: its path is the ref, so nothing is
  stored and the file is judged exactly as it stands in the pull request.
- A changed suite file, or a case file a suite refers to, changes what "passing" means for its
  prompt even when the prompt did not change: the prompt is judged as it stands at the label
  (``NAME@LABEL``) under the new suite. A prompt already covered by a draft is not listed twice
  (two candidates for one prompt is an error).
- Deleted files are ignored: there is nothing left to evaluate, and the registry keeps every
  version anyway.

A file under the prompts folder that fails to load is still returned as a draft ref: ``push``
treats every YAML file there as a prompt, so the check must refuse it loudly (exit 2, with the
exact problem) instead of letting a broken prompt through as "nothing to check".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import BadInput, PromptFileError, PromptgateError
from .limits import MAX_SUITE_FILE_BYTES
from .promptfile import load_prompt_file
from .refs import check_label_name
from .yamlload import load_yaml_file

YAML_SUFFIXES = (".yaml", ".yml")

__all__ = [
    "ChangeSet",
    "analyze_changes",
    "build_parser",
    "changed_refs",
    "git_changed_files",
    "main",
]


@dataclass(frozen=True)
class ChangeSet:
    """The refs a set of changed files asks the gate to judge, and why some files map to none.

    ``notes`` exist so that a CI log can say why a changed file made nothing run (a case file no
    suite refers to, the config). ``errors`` are changes no check could judge and every check
    would trip over (a suite that is not valid YAML): they must fail the job, not pass it as
    "nothing to check".
    """

    refs: list[str]
    drafts: dict[str, str | None] = field(default_factory=dict)  # path -> name, None: unloadable
    labelled: list[str] = field(default_factory=list)  # prompts judged at the label
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _rel(path: str | Path, root: Path) -> PurePosixPath:
    """A normalised repository-relative POSIX path, so that git's output, config folders and
    a suite's `cases:` reference compare equal (no symlink resolution: git names links)."""
    p = Path(os.path.normpath(path))
    if p.is_absolute():
        try:
            p = p.relative_to(Path(os.path.normpath(root.absolute())))
        except ValueError:
            return PurePosixPath(p.as_posix())
    return PurePosixPath(p.as_posix())


def _under(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return folder == PurePosixPath(".") or path.parts[: len(folder.parts)] == folder.parts


def _safe_yaml(path: Path) -> tuple[Any, str | None]:
    """Parsed YAML data, or None and the reason it could not be read."""
    try:
        return load_yaml_file(path, MAX_SUITE_FILE_BYTES).data, None
    except ValueError as exc:  # one line: "path[:line]: [invalid YAML: ]problem"
        text = str(exc)
        return None, text.split("invalid YAML: ", 1)[1] if "invalid YAML: " in text else text


def _case_file_owners(root: Path, evals: PurePosixPath) -> dict[PurePosixPath, set[str]]:
    """Every case file a suite under the evals folder names (`cases: file.jsonl`), mapped to
    the prompts of the suites that name it. Read from the working tree, i.e. the pull
    request's side, because that is what the check will run."""
    owners: dict[PurePosixPath, set[str]] = {}
    folder = root / evals
    if not folder.is_dir():
        return owners
    for f in sorted(p for p in folder.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file()):
        data, _ = _safe_yaml(f)
        if (
            isinstance(data, dict)
            and isinstance(data.get("prompt"), str)
            and isinstance(data.get("cases"), str)
        ):
            owners.setdefault(_rel(f.parent / data["cases"], root), set()).add(data["prompt"])
    return owners


def analyze_changes(
    changed_files: Iterable[str],
    *,
    prompts_dir: str | Path,
    evals_dir: str | Path,
    label: str,
    root: Path | None = None,
) -> ChangeSet:
    """Map a pull request's changed files (paths relative to ``root``, the repository root and
    working directory of the check) to gate refs, with notes on files that map to nothing."""
    check_label_name(label)
    root = Path(root) if root is not None else Path.cwd()
    prompts = _rel(prompts_dir, root)
    evals = _rel(evals_dir, root)
    drafts: dict[str, str | None] = {}
    suite_prompts: set[str] = set()
    notes: list[str] = []
    errors: list[str] = []
    case_owners: dict[PurePosixPath, set[str]] | None = None  # built only when needed

    for raw in sorted(set(changed_files)):
        if not raw.strip():
            continue
        rel = _rel(raw, root)
        path = root / rel
        if not path.is_file():
            continue  # deleted (or never there): nothing to evaluate
        if _under(rel, prompts) and rel.suffix in YAML_SUFFIXES:
            try:
                drafts[rel.as_posix()] = load_prompt_file(path).name
            except PromptFileError as exc:
                # Still a candidate: the check refuses it with the exact problem (exit 2).
                drafts[rel.as_posix()] = None
                notes.append(f"{rel}: not a valid prompt file ({exc}); the check will refuse it")
            continue
        if not _under(rel, evals):
            if rel.name == "promptgate.yaml":
                notes.append(f"{rel}: project config changed; it maps to no prompt by itself")
            continue
        if rel.suffix in YAML_SUFFIXES:
            data, problem = _safe_yaml(path)
            if problem is not None:
                # Every check loads every suite, so this breaks them all: say so here.
                errors.append(f"{rel}: invalid YAML: {problem}")
                continue
            if isinstance(data, dict) and "prompt" in data:
                if isinstance(data["prompt"], str):
                    suite_prompts.add(data["prompt"])
                else:
                    errors.append(f"{rel}: `prompt` must name a prompt")
                continue
        if case_owners is None:
            case_owners = _case_file_owners(root, evals)
        owners = case_owners.get(rel)
        if owners:
            suite_prompts |= owners
        else:
            notes.append(f"{rel}: neither a suite nor a case file a suite refers to")

    covered = {name for name in drafts.values() if name is not None}
    labelled = sorted(suite_prompts - covered)
    refs = [*sorted(drafts), *(f"{name}@{label}" for name in labelled)]
    return ChangeSet(refs=refs, drafts=drafts, labelled=labelled, notes=notes, errors=errors)


def changed_refs(
    changed_files: list[str],
    *,
    prompts_dir: str | Path,
    evals_dir: str | Path,
    label: str,
    root: Path | None = None,
) -> list[str]:
    """The gate refs for a pull request's changed files: prompt files as draft paths, then
    ``NAME@LABEL`` for prompts whose suites changed and that no draft already covers.

    Raises BadInput for a changed suite no check could load, rather than returning no refs
    (which a CI job would read as "nothing to check")."""
    changes = analyze_changes(
        changed_files, prompts_dir=prompts_dir, evals_dir=evals_dir, label=label, root=root
    )
    if changes.errors:
        raise BadInput("; ".join(changes.errors))
    return changes.refs


def git_changed_files(base: str, *, cwd: Path | None = None) -> list[str]:
    """Files added, copied, modified or renamed between the merge base of ``base`` and HEAD
    (``base...HEAD``: only the pull request's own changes, not what landed on base since)."""
    proc = subprocess.run(
        ["git", "diff", "--name-only", "-z", "--relative", "--diff-filter=ACMR", f"{base}...HEAD"],
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PromptgateError(
            f"git diff {base}...HEAD failed: {message[0] if message else f'exit {proc.returncode}'}"
        )
    return [p for p in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if p]


def _config() -> Any:
    from .config import load_config

    return load_config()


def build_parser() -> argparse.ArgumentParser:
    """The entry point's arguments (a function so that tests can check the action's calls)."""
    parser = argparse.ArgumentParser(
        prog="python -m promptgate.ci", description="Helpers for running the gate in CI."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    refs_p = sub.add_parser(
        "refs",
        help="Print the gate refs for the changes since --base, "
        "one per line (nothing when there are none).",
    )
    refs_p.add_argument(
        "--base",
        required=True,
        metavar="GIT_REF",
        help="The branch the pull request merges into, e.g. origin/main.",
    )
    refs_p.add_argument(
        "--label", default=None, help="Baseline label for suite-only changes (default: gate.label)."
    )
    conf_p = sub.add_parser(
        "config",
        help="Print one effective setting of promptgate.yaml "
        "(registry: as the CLI would resolve it).",
    )
    conf_p.add_argument("key", choices=["prompts", "evals", "registry", "label"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m promptgate.ci``: the pieces of the CI flow that are easier in Python."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _config()
        if args.command == "config":
            if args.key == "registry":
                from .config import resolve_registry

                print(resolve_registry(None, config))
            elif args.key == "label":
                print(config.gate.label)
            else:
                print(_rel(config.root / getattr(config, args.key), Path.cwd()).as_posix())
            return 0
        changes = analyze_changes(
            git_changed_files(args.base),
            prompts_dir=config.root / config.prompts,
            evals_dir=config.root / config.evals,
            label=args.label or config.gate.label,
        )
    except PromptgateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for note in changes.notes:
        print(f"note: {note}", file=sys.stderr)
    if changes.errors:
        for error in changes.errors:
            print(f"error: {error}", file=sys.stderr)
        return BadInput.exit_code
    for ref in changes.refs:
        print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
