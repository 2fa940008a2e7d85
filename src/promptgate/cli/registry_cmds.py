"""Registry commands: init, push, list, show, history, diff, label, rollback, log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import AppContext, console, emit_json, note, parse_version_opt

pass_app = click.make_pass_decorator(AppContext)


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


@click.command()
@pass_app
def init(app: AppContext) -> None:
    """Create promptgate.yaml (kept if present) and create or migrate its registry."""
    from ..config import CONFIG_FILE, DEFAULT_CONFIG_TEXT, find_config

    if find_config() is None:
        Path(CONFIG_FILE).write_text(DEFAULT_CONFIG_TEXT, encoding="utf-8")
        note(f"wrote {CONFIG_FILE}")
        app._config = None
    else:
        note(f"kept existing {CONFIG_FILE}")
    store = app.store(create=True)
    applied = store.migrate()
    note(
        f"registry {app.registry_url}: "
        + (f"applied migrations {', '.join(map(str, applied))}" if applied else "up to date")
    )


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True, help="Why this change was made.")
@click.option("--author", default=None, help="Default: PROMPTGATE_AUTHOR, git user, OS user.")
@click.option("--json", "as_json", is_flag=True, help="Print the pushed versions as JSON.")
@pass_app
def push(
    app: AppContext, paths: tuple[Path, ...], message: str, author: str | None, as_json: bool
) -> None:
    """Store prompt files as new immutable versions (all or nothing) and move `latest`."""
    from ..registry import default_author, push_paths

    targets = list(paths) or [app.config.root / app.config.prompts]
    results = push_paths(app.store(), targets, message=message, author=author or default_author())
    if as_json:
        emit_json([dict(r.version.to_json(), created=r.created) for r in results])
        return
    for r in results:
        state = "new" if r.created else "unchanged"
        click.echo(f"{r.version.ref}  {state}  {r.version.content_hash[:12]}")


def _version_table(rows: list[Any], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in ("prompt", "version", "labels", "author", "created", "message"):
        table.add_column(
            col, no_wrap=col != "message", overflow="fold" if col == "message" else "ellipsis"
        )
    for v in rows:
        table.add_row(
            v.name + (" (partial)" if v.content.get("partial") is True else ""),
            f"v{v.version}",
            ", ".join(v.labels),
            v.author,
            _fmt_time(v.created_at),
            v.message.splitlines()[0] if v.message else "",
        )
    console().print(table)


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One object per prompt: its newest version.")
@pass_app
def list_(app: AppContext, as_json: bool) -> None:
    """List prompts with their newest version and labels."""
    versions = app.store().list_prompts()
    if as_json:
        emit_json([v.to_json() for v in versions])
    elif not versions:
        note("no prompts yet: `promptgate push` stores prompts/")
    else:
        _version_table(versions)


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="The version object as JSON.")
@click.option(
    "--resolved",
    is_flag=True,
    help="With its includes expanded: the partial versions it renders with at the label.",
)
@pass_app
def show(app: AppContext, ref: str, as_json: bool, resolved: bool) -> None:
    """Show one version: NAME, NAME@vN or NAME@LABEL."""
    import yaml

    from ..registry import resolve

    v = resolve(app.store(), ref)
    resolution = _resolution(app, v, ref) if resolved else None
    if as_json:
        if resolution is None:
            emit_json(v.to_json())
        else:
            from ..resolved import with_resolution

            emit_json(with_resolution(v.to_json(), resolution))
        return
    click.echo(f"{v.ref}  {v.content_hash}")
    click.echo(f"labels:  {', '.join(v.labels) or '-'}")
    click.echo(f"author:  {v.author}   created: {v.created_at.isoformat()}")
    click.echo(f"message: {v.message}")
    content = v.content
    if resolution is not None:
        click.echo(f"resolved at {resolution.label}: {resolution.resolved_hash}")
        for item in resolution.includes:
            click.echo(f"  includes {item.include!r}: {item.name}@v{item.version}")
        for missing in resolution.missing:
            click.echo(f"  includes {missing!r}: no version at {resolution.label}")
        content = _expanded(content, resolution.texts())
    click.echo("---")
    click.echo(
        yaml.safe_dump(
            {"name": v.name, **content}, sort_keys=False, allow_unicode=True, width=100
        ).rstrip()
    )


def _expanded(content: dict[str, Any], texts: dict[str, str]) -> dict[str, Any]:
    """The content with every template's includes written out (what it renders with)."""
    from ..render import expand_includes

    out = dict(content)
    if "template" in out:
        out["template"] = expand_includes(out["template"], texts)
    if "messages" in out:
        out["messages"] = [
            {**m, "content": expand_includes(m["content"], texts)}
            if isinstance(m.get("content"), str)
            else m
            for m in out["messages"]
        ]
    return out


def _resolution(app: AppContext, side: Any, ref: str) -> Any:
    """The partials `side` renders with: at the ref's label, else (a version or a draft
    file) at `latest`."""
    from ..refs import parse_ref
    from ..resolved import resolution_of

    parsed = parse_ref(ref)
    label = (parsed.label if not parsed.is_draft else None) or "latest"
    return resolution_of(app.store(), side, label)


@click.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="A list of version objects, oldest first.")
@pass_app
def history(app: AppContext, name: str, as_json: bool) -> None:
    """List every version of a prompt."""
    versions = app.store().history(name)
    if as_json:
        emit_json([v.to_json() for v in versions])
    else:
        _version_table(versions, title=name)


def _load_side(app: AppContext, ref: str) -> tuple[Any, str]:
    from ..promptfile import load_prompt_file
    from ..refs import parse_ref
    from ..registry import resolve

    parsed = parse_ref(ref)
    if parsed.is_draft:
        assert parsed.path is not None
        return load_prompt_file(parsed.path), str(parsed.path)
    v = resolve(app.store(), parsed)
    return v, v.ref


@click.command()
@click.argument("ref_a")
@click.argument("ref_b")
@click.option("--json", "as_json", is_flag=True, help="{text, config} as JSON.")
@pass_app
def diff(app: AppContext, ref_a: str, ref_b: str, as_json: bool) -> None:
    """Compare two versions (or a draft file): text diff plus a config diff. Exits 0 either way."""
    from ..registry import config_diff, includes_diff, text_diff

    a, a_name = _load_side(app, ref_a)
    b, b_name = _load_side(app, ref_b)
    text = text_diff(a, b, a_name, b_name)
    config = config_diff(a.content, b.content)
    included = includes_diff(_resolution(app, a, ref_a), _resolution(app, b, ref_b))
    if as_json:
        emit_json(
            {
                "from": a_name,
                "to": b_name,
                "text": text,
                "config": config,
                "includes": included,
                "identical": a.content_hash == b.content_hash,
            }
        )
        return
    if a.content_hash == b.content_hash and not included:
        click.echo(f"{a_name} and {b_name} have identical content")
        return
    if a.content_hash == b.content_hash:
        click.echo(f"{a_name} and {b_name} have identical content; what they include differs")
    else:
        click.echo(text or "(template text unchanged)")
    for path, change in config.items():
        click.echo(f"config {path}: {change.get('from')!r} -> {change.get('to')!r}")
    for key, change in included.items():
        click.echo(f'include "{key}": {change["from"] or "-"} -> {change["to"] or "-"}')
        if change["text"]:
            click.echo(change["text"])


@click.group()
def label() -> None:
    """Move or remove unprotected labels."""


def _policy(app: AppContext) -> Any:
    from ..registry import LabelPolicy

    return LabelPolicy(frozenset(app.config.protected_labels))


@label.command(name="set")
@click.argument("ref")
@click.argument("label_name", metavar="LABEL")
@click.option(
    "--expect",
    default=None,
    metavar="vN|none",
    help="Compare-and-swap: move only if the label is at vN (none: unset); else exit 3.",
)
@click.option("--reason", default="", help="Why, for the audit log.")
@pass_app
def label_set(app: AppContext, ref: str, label_name: str, expect: str | None, reason: str) -> None:
    """Point an unprotected label at a version."""
    from ..registry import default_author, set_label

    expected = parse_version_opt(expect, "--expect")
    event = set_label(
        app.store(),
        ref,
        label_name,
        policy=_policy(app),
        actor=default_author(),
        reason=reason,
        expect=expected,
    )
    if event is None:
        click.echo(f"{ref}: {label_name} already points there; nothing moved")
    else:
        src = f"v{event.from_version}" if event.from_version else "unset"
        click.echo(f"{event.prompt}@{label_name}: {src} -> v{event.to_version}")


@label.command(name="rm")
@click.argument("name")
@click.argument("label_name", metavar="LABEL")
@click.option("--reason", required=True, help="Why, for the audit log.")
@pass_app
def label_rm(app: AppContext, name: str, label_name: str, reason: str) -> None:
    """Remove an unprotected label."""
    from ..registry import default_author, remove_label

    event = remove_label(
        app.store(), name, label_name, policy=_policy(app), actor=default_author(), reason=reason
    )
    click.echo(f"{name}@{label_name}: removed (was v{event.from_version})")


@click.command()
@click.argument("name")
@click.option("--label", "label_name", required=True, help="The label to move back.")
@click.option(
    "--to",
    "to",
    default=None,
    metavar="vN",
    help="A version the label held before (default: the one before its last move).",
)
@click.option("--reason", required=True, help="Why, for the audit log.")
@pass_app
def rollback(app: AppContext, name: str, label_name: str, to: str | None, reason: str) -> None:
    """Move a label back at once, to the version it held before (protected labels too)."""
    from ..registry import default_author
    from ..registry import rollback as do_rollback

    target = parse_version_opt(to, "--to") if to else None
    if target == "any" or (to is not None and target is None):
        raise click.BadParameter("expected vN", param_hint="--to")
    event = do_rollback(
        app.store(),
        name,
        label_name,
        to=target if isinstance(target, int) else None,
        actor=default_author(),
        reason=reason,
    )
    click.echo(f"{name}@{label_name}: v{event.from_version} -> v{event.to_version} (rollback)")
    renders = event.details.get("renders")
    if renders:
        click.echo(
            f"{name} is a partial: {', '.join(f'{n}@{label_name}' for n in renders)} "
            f"now render{'s' if len(renders) == 1 else ''} {name}@v{event.to_version}"
        )


@click.command()
@click.argument("name", required=False)
@click.option("--label", "label_name", default=None, help="Only events of this label.")
@click.option("--limit", default=100, show_default=True, help="At most this many events.")
@click.option("--json", "as_json", is_flag=True, help="A list of events, newest first.")
@pass_app
def log(
    app: AppContext, name: str | None, label_name: str | None, limit: int, as_json: bool
) -> None:
    """Show the audit trail: pushes, label moves, rollbacks, removals."""
    from rich.table import Table

    events = app.store().audit(prompt=name, label=label_name, limit=limit)
    if as_json:
        emit_json([e.to_json() for e in events])
        return
    table = Table()
    for col in ("seq", "at", "type", "prompt", "label", "from", "to", "actor", "reason"):
        table.add_column(col, no_wrap=col != "reason")
    for e in events:
        kind = "rollback" if e.details.get("rollback") else e.type
        table.add_row(
            str(e.id),
            _fmt_time(e.at),
            kind,
            e.prompt,
            e.label or "",
            f"v{e.from_version}" if e.from_version else "",
            f"v{e.to_version}" if e.to_version else "",
            e.actor,
            _log_reason(e),
        )
    console().print(table)


def _log_reason(e: Any) -> str:
    reason = e.reason.splitlines()[0] if e.reason else ""
    renders = e.details.get("renders")
    if renders:  # a partial's rollback: what its includers render went back too
        reason += f" (partial: {', '.join(renders)} render v{e.to_version} again)"
    return reason


COMMANDS = [init, push, list_, show, history, diff, label, rollback, log]


@click.command()
@click.argument("ref")
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="A variable for the templates (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="The rendered messages as JSON.")
@pass_app
def render(app: AppContext, ref: str, variables: tuple[str, ...], as_json: bool) -> None:
    """Render a version's messages with variables, in the sandbox, without calling a model."""
    from ..errors import BadInput
    from ..promptfile import with_defaults
    from ..render import render_messages

    given: dict[str, str] = {}
    for item in variables:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadInput(f"--var {item!r}: expected NAME=VALUE")
        given[key] = value
    side, name = _load_side(app, ref)
    included = _resolution(app, side, ref).require(name)
    messages = render_messages(side.content, with_defaults(side.content, given), name, included)
    if as_json:
        emit_json(messages)
        return
    for m in messages:
        click.echo(f"[{m['role']}]\n{m['content']}\n")


COMMANDS.append(render)


@click.command()
@click.argument("names", nargs=-1)
@click.option(
    "--label",
    "label_name",
    default="production",
    show_default=True,
    help="Lock the versions this label points at.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("promptgate.lock.json"),
    show_default=True,
    help="Where to write the lock file.",
)
@pass_app
def lock(app: AppContext, names: tuple[str, ...], label_name: str, output: Path) -> None:
    """Write a lock file (prompts with their content hashes) for the SDK's cold starts."""
    from ..lockfile import write_lock
    from ..refs import check_label_name

    check_label_name(label_name)
    document = write_lock(app.store(), list(names) or None, label_name, output)
    for name, version in document["prompts"].items():
        click.echo(f"{name}@v{version['version']}  {version['content_hash'][:12]}")
    note(f"wrote {output} ({len(document['prompts'])} prompts at {label_name})")


COMMANDS.append(lock)
