"""Server commands: serve, and API keys."""

from __future__ import annotations

import click

from ..errors import BadInput
from .common import AppContext, emit_json, note

pass_app = click.make_pass_decorator(AppContext)

# the top-level modules of the `server` extra (pyproject.toml) and what they pull in
_SERVER_EXTRA = frozenset(
    {"fastapi", "starlette", "pydantic", "uvicorn", "multipart", "python_multipart", "itsdangerous"}
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8700, show_default=True, help="Port to listen on.")
@click.option("--public-url", default=None, help="The URL people reach the server at.")
@pass_app
def serve(app: AppContext, host: str, port: int, public_url: str | None) -> None:
    """Run the registry server and web UI over the configured registry."""
    try:
        import uvicorn

        from ..server import ServerSettings, create_app
    except ModuleNotFoundError as exc:  # lazy: the web server is the `server` extra
        if (exc.name or "").split(".")[0] not in _SERVER_EXTRA:
            raise
        raise BadInput(
            f"promptgate serve needs the server extra ({exc.name} is not installed): "
            "pip install 'promptgate[server]'"
        ) from None

    settings = ServerSettings(
        registry=app.registry_url,
        config=app.config,
        public_url=public_url or f"http://{host}:{port}",
    )
    note(f"promptgate registry on http://{host}:{port} (registry {app.registry_url})")
    # long-polls end within a second of a stop (they re-check every second), so a short
    # graceful timeout never cuts a normal request
    uvicorn.run(
        create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5
    )


@click.group()
def keys() -> None:
    """Manage API keys (roles: viewer, editor, approver, admin)."""


@keys.command(name="create")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "editor", "approver", "admin"]),
    help="What the key may do; roles are cumulative.",
)
@pass_app
def keys_create(app: AppContext, name: str, role: str) -> None:
    """Create a key; it is printed once, alone on stdout, and only its hash is stored."""
    key = app.backend().keys.create_key(name, role)
    click.echo(key)
    note("store this key now: it is shown only once")


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="A list of keys as JSON.")
@pass_app
def keys_list(app: AppContext, as_json: bool) -> None:
    """List keys (names and roles; never the keys)."""
    listed = app.backend().keys.list_keys()
    if as_json:
        emit_json([k.to_json() for k in listed])
        return
    for k in listed:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        click.echo(f"{k.name}\t{k.role}\t{state}")


@keys.command(name="revoke")
@click.argument("name")
@pass_app
def keys_revoke(app: AppContext, name: str) -> None:
    """Revoke a key at once."""
    app.backend().keys.revoke_key(name)
    click.echo(f"revoked {name}")


COMMANDS: list[click.Command] = [serve, keys]
