"""`Registry` is what `Store` and `RemoteStore` share: mypy checks that both implement it where
`open_backend` builds a `Backend`; this checks at run time that each has every method of the
protocol, with its parameters, and that `open_store` gives one for either kind of URL."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from promptgate.errors import BadInput
from promptgate.remote import Backend, RemoteStore, open_backend, open_database, open_store
from promptgate.store import Registry, Store
from promptgate.store.protocol import Registry as ProtocolRegistry

MEMBERS = sorted(
    name for name, value in vars(Registry).items() if callable(value) and not name.startswith("_")
)


def _params(fn: object) -> dict[str, tuple[object, bool]]:
    """Parameter name -> (kind, has a default)."""
    signature = inspect.signature(fn)  # type: ignore[arg-type]
    return {
        p.name: (p.kind, p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
    }


def test_the_protocol_is_one_class_re_exported() -> None:
    assert Registry is ProtocolRegistry
    assert "close" in MEMBERS and "push" in MEMBERS and "lock_versions" in MEMBERS


@pytest.mark.parametrize("backend", [Store, RemoteStore])
@pytest.mark.parametrize("member", MEMBERS)
def test_both_backends_have_every_method_with_its_parameters(backend: type, member: str) -> None:
    mine = getattr(backend, member, None)
    assert mine is not None, f"{backend.__name__} has no {member}"
    wanted, got = _params(getattr(Registry, member)), _params(mine)
    assert list(got)[: len(wanted)] == list(wanted)
    assert {n: got[n] for n in wanted} == wanted
    # a backend may take more parameters, all optional (Store.close's grace period)
    assert all(has_default for n, (_, has_default) in got.items() if n not in wanted)


def test_open_store_gives_a_registry_for_either_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}", create=True)
    try:
        assert type(store) is Store
    finally:
        store.close()
    remote = open_backend("http://127.0.0.1:9")
    try:
        assert type(remote) is Backend
        assert type(remote.store) is RemoteStore and remote.server is remote.store
    finally:
        remote.store.close()


def test_a_server_serves_a_database_never_another_server(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is a registry server"):
        open_database("http://127.0.0.1:9")
    with pytest.raises(BadInput, match="bad registry URL"):
        open_database("mysql://x")
    store = open_database(f"sqlite:///{tmp_path / 'r.db'}", create=True)
    store.close()
