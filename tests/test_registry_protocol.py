"""`Registry` is what `Store` and `RemoteStore` share: mypy checks that both implement it where
`open_backend` builds a `Backend`; this checks at run time that each has every method of the
protocol, with its parameters, and that `open_store` gives one for either kind of URL. And the
server's records (`domain`) write the API's JSON and read it back."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

import pytest

import promptgate
from promptgate.domain import ApiKey, PromotionRequest, WebhookDelivery
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


# -- the server's records: to_json is the API's shape, from_json reads it back -------------------

PROMOTION_JSON = {
    "id": 7,
    "refs": ["greet@v2"],
    "label": "production",
    "reason": "better",
    "author": "ann",
    "state": "passed",
    "candidates": {"greet": {"version": 2, "content_hash": "ab" * 32}},
    "baseline": {"greet": None},
    "report": 3,
    "progress": {"done": 2, "total": 2},
    "decided_by": None,
    "comment": None,
    "created_at": "2026-01-02T03:04:05.000006+00:00",
    "updated_at": "2026-01-02T03:04:06.000007+00:00",
}
KEY_JSON = {
    "name": "ci",
    "role": "editor",
    "created_at": "2026-01-02T03:04:05+00:00",
    "revoked_at": None,
}
DELIVERY_JSON = {
    "id": 1,
    "url": "http://hooks.example/x",
    "event_seq": 4,
    "event_type": "move",
    "status": 204,
    "attempts": 2,
    "error": None,
    "at": "2026-01-02T03:04:05+00:00",
}


@pytest.mark.parametrize(
    ("record", "data"),
    [(PromotionRequest, PROMOTION_JSON), (ApiKey, KEY_JSON), (WebhookDelivery, DELIVERY_JSON)],
)
def test_records_read_back_what_they_write(record: Any, data: dict[str, Any]) -> None:
    made = record.from_json(data)
    assert made.to_json() == data and list(made.to_json()) == list(data)
    assert record.from_json(json.loads(json.dumps(made.to_json()))) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(made)[0].name, None)


def test_a_promotion_request_names_its_report_id_and_never_shares_its_dicts() -> None:
    request = PromotionRequest.from_json(PROMOTION_JSON)
    assert request.report_id == 3 and request.refs == ("greet@v2",)
    served = request.to_json()
    served["candidates"]["greet"]["version"] = 99
    assert request.candidates["greet"]["version"] == 2


def test_an_api_key_never_holds_the_key() -> None:
    fields = {f.name for f in dataclasses.fields(ApiKey)}
    assert fields == {"name", "role", "created_at", "revoked_at"}


BACKENDS = {"Store", "RemoteStore", "LocalKeys", "Registry"}


def _names(node: ast.expr) -> set[str]:
    """The class names an isinstance's second argument (a name, attribute or tuple) holds."""
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(e) for e in node.elts))
    if isinstance(node, ast.Attribute):
        return {node.attr}
    return {node.id} if isinstance(node, ast.Name) else set()


def test_no_code_asks_which_backend_it_holds() -> None:
    """No isinstance on a backend anywhere: `remote.open_backend` builds the one it needs, and
    the rest works on `Registry` (and on `Backend.server` for what only a server does)."""
    src = Path(promptgate.__file__).resolve().parent
    found = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass")
                and len(node.args) == 2
                and _names(node.args[1]) & BACKENDS
            ):
                found.append(f"{path.relative_to(src)}:{node.lineno}")
    assert found == []
