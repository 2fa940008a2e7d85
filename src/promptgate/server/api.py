"""The HTTP API under /v1 (README: API). Route functions are plain `def`s, so FastAPI runs their
blocking store calls in its thread pool, never on the event loop; only the events long-poll
is async, and it reaches the store through the thread pool too."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..canonical import canonical_json
from ..domain import LabelMove
from ..errors import LabelConflict, UnknownRef
from ..promptfile import NAME_RE, includes, validate_content
from ..refs import check_label_name
from ..registry import LabelPolicy, push_specs, rollback_target, set_label
from ..resolved import resolution_of, snapshot_resolved, with_resolution
from ..store import (
    LATEST,
    create_key,
    get_promotion,
    get_report,
    list_keys,
    list_promotions,
    max_seq,
    revoke_key,
)
from .auth import Principal
from .promotions import accept_report, decide, file_request
from .state import ApiError, ServerState

router = APIRouter(prefix="/v1")

MAX_ID = 2**31 - 1  # ids and versions fit a 32-bit column on every engine
PID = Path(ge=1, le=MAX_ID)
SEQ_HEADER = "X-Promptgate-Seq"  # the event seq a prompt read reflects (at least)
MIN_SEQ_WAIT_S = 2.0  # how long a read with ?min_seq= waits for this replica to catch up


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.pg
    return state


def _principal(request: Request, authorization: str | None) -> Principal:
    if not authorization or not authorization.startswith("Bearer "):
        raise ApiError(401, "unauthorized", "missing API key: send Authorization: Bearer KEY")
    found = _state(request).keys.lookup(authorization[len("Bearer ") :].strip())
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key")
    return found


async def _principal_async(request: Request, authorization: str | None) -> Principal:
    """The fast path: a cached key answers without leaving the event loop."""
    if authorization and authorization.startswith("Bearer "):
        found, who = _state(request).keys.peek(authorization[len("Bearer ") :].strip())
        if found and who is not None:
            return who
    result: Principal = await run_in_threadpool(_principal, request, authorization)
    return result


def requires(role: str) -> Any:
    async def dependency(
        request: Request, authorization: str | None = Header(default=None)
    ) -> Principal:
        who = await _principal_async(request, authorization)
        if not who.can(role):
            raise ApiError(403, "forbidden", f"{who.name} is a {who.role}; this needs {role}")
        return who

    return Depends(dependency)


def _check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ApiError(404, "not_found", f"unknown prompt {name!r}")
    return name


def _etag(body: Any) -> str:
    return '"' + hashlib.sha256(canonical_json(body)).hexdigest()[:32] + '"'


class PushBody(BaseModel):
    content: dict[str, Any]
    message: str = Field(min_length=1)


class MoveBody(BaseModel):
    version: int = Field(ge=1, le=MAX_ID)
    reason: str = ""


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1)


class RollbackBody(BaseModel):
    to: int | None = Field(default=None, ge=1, le=MAX_ID)
    reason: str = Field(min_length=1)


class PromotionBody(BaseModel):
    refs: list[str] = Field(min_length=1)
    label: str
    reason: str = Field(min_length=1)
    run_gate: bool = True


class DecisionBody(BaseModel):
    comment: str | None = None


class KeyBody(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: str


# -- prompts and versions -----------------------------------------------------------------------


@router.get("/prompts")
def list_prompts(request: Request, who: Principal = requires("viewer")) -> list[dict[str, Any]]:
    return [v.to_json() for v in _state(request).store.list_prompts()]


@router.get("/prompts/{name}")
async def get_prompt(
    request: Request,
    name: str,
    label: str | None = Query(default=None),
    version: int | None = Query(default=None, ge=1, le=MAX_ID),
    min_seq: int | None = Query(default=None, ge=0, le=MAX_ID),
    if_none_match: str | None = Header(default=None),
    who: Principal = requires("viewer"),
) -> Any:
    """The hot path of every application: served from the resolve cache when it can be
    (dropped on every event this replica hears of), else read in the thread pool.

    Read-your-writes across replicas: with `min_seq=N` (the `seq` a write answered with) the
    answer reflects event N or later. This replica waits up to MIN_SEQ_WAIT_S for its view
    to reach N, else answers 503 with Retry-After. Every answer says in X-Promptgate-Seq
    the seq it reflects at least."""
    state = _state(request)
    _check_name(name)
    if label is not None and version is not None:
        raise ApiError(400, "bad_request", "give label or version, not both")
    if label is not None:
        check_label_name(label)
    key = (name, label, version)
    hit = state.resolved.get(key)
    if hit is not None and min_seq is not None and hit[2] < min_seq:
        hit = None  # cached before event min_seq: read again
    if hit is None and min_seq is not None:
        deadline = time.monotonic() + MIN_SEQ_WAIT_S
        while (seen := await run_in_threadpool(max_seq, state.store)) < min_seq:
            if time.monotonic() >= deadline or state.stopping:
                return JSONResponse(
                    {
                        "error": "unavailable",
                        "detail": f"this replica has seen events up to seq {seen}, "
                        f"not yet {min_seq}: retry",
                    },
                    status_code=503,
                    headers={"Retry-After": "1", SEQ_HEADER: str(seen)},
                )
            await asyncio.sleep(0.05)
    if hit is None:  # (read after event min_seq, if given: it is in this replica's view)
        hit = await run_in_threadpool(_resolve_body, state, name, label, version)
    body, tag, seq = hit
    headers = {"ETag": tag, SEQ_HEADER: str(seq)}
    if if_none_match is not None and tag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


def _resolve_body(
    state: ServerState, name: str, label: str | None, version: int | None
) -> tuple[bytes, str, int]:
    """(body, ETag, seq): the version object with its `resolved` member (the partials it
    includes, at the label; at `latest` for a version read). A label read takes the prompt and
    its partials from one snapshot, at the seq returned; a version read's seq is read first,
    so the body reflects that event at least (event ids commit in order, see Store._audit)."""
    generation = state.resolved.generation
    store = state.store
    seq = max_seq(store)
    at = label or LATEST
    v = store.get_version(name, version) if version is not None else store.resolve(name, at)
    if version is None and includes(v.content):  # the prompt and its partials at one seq
        seq, found, resolutions = snapshot_resolved(store, at, [name])
        if name not in found:  # its label was removed meanwhile
            raise UnknownRef(f"unknown ref {name}@{at}")
        v, resolution = found[name], resolutions[name]
    else:
        resolution = resolution_of(store, v, at)  # (no reads without includes)
    data = with_resolution(v.to_json(), resolution)
    entry = (canonical_json(data), _etag(data), seq)
    state.resolved.put((name, label, version), entry, generation)
    return entry


@router.get("/prompts/{name}/versions")
def list_versions(
    request: Request, name: str, who: Principal = requires("viewer")
) -> list[dict[str, Any]]:
    return [v.to_json() for v in _state(request).store.history(_check_name(name))]


@router.post("/prompts/{name}/versions", status_code=201)
def push_version(
    request: Request,
    response: Response,
    name: str,
    body: PushBody,
    who: Principal = requires("editor"),
) -> dict[str, Any]:
    state = _state(request)
    spec = validate_content(_check_name(name), body.content, where=f"prompt {name}")
    [result] = push_specs(state.store, [spec], message=body.message, author=who.name)
    state.hub.notify()
    response.headers[SEQ_HEADER] = str(max_seq(state.store))  # for a read with ?min_seq=
    if not result.created:
        response.status_code = 200
    return result.version.to_json()


# -- labels -------------------------------------------------------------------------------------


def _policy(state: ServerState) -> LabelPolicy:
    return LabelPolicy(frozenset(state.settings.config.protected_labels))


def _parse_if_match(value: str | None) -> int | None | str:
    if value is None:
        return "any"
    tag = value.strip().removeprefix("W/").strip('"')
    if tag == "none":
        return None
    if tag.startswith("v"):
        tag = tag[1:]
    if not (tag.isascii() and tag.isdecimal()):  # ("²".isdigit() is true)
        raise ApiError(400, "bad_request", f'If-Match must be "N" or "none", not {value!r}')
    return int(tag)


@router.put("/prompts/{name}/labels/{label}")
def move_label(
    request: Request,
    name: str,
    label: str,
    body: MoveBody,
    if_match: str | None = Header(default=None),
    who: Principal = requires("editor"),
) -> dict[str, Any]:
    state = _state(request)
    store = state.store
    _check_name(name)
    check_label_name(label)
    if label == LATEST or label in state.settings.config.protected_labels:
        raise ApiError(
            403, "protected_label", f"label {label!r} moves only through promotion or rollback"
        )
    expect = _parse_if_match(if_match)
    policy = LabelPolicy(frozenset(state.settings.config.protected_labels))
    try:  # the CLI's `label set` rules, partials' includers among them
        event = set_label(
            store,
            f"{name}@v{body.version}",
            label,
            policy=policy,
            actor=who.name,
            reason=body.reason,
            expect=expect,
        )
    except LabelConflict as exc:
        raise ApiError(412, "precondition_failed", str(exc)) from None
    state.hub.notify()
    [row] = [x for x in store.labels(name) if x.label == label]
    # seq: the move's event (the newest event when it was already there), for ?min_seq=
    seq = event.id if event is not None else max_seq(store)
    return {
        "prompt": name,
        "label": label,
        "version": row.version,
        "revision": row.revision,
        "seq": seq,
    }


@router.delete("/prompts/{name}/labels/{label}")
def delete_label(
    request: Request,
    name: str,
    label: str,
    body: ReasonBody = Body(...),
    who: Principal = requires("editor"),
) -> dict[str, Any]:
    state = _state(request)
    _check_name(name)
    check_label_name(label)
    if label == LATEST or label in state.settings.config.protected_labels:
        raise ApiError(403, "protected_label", f"label {label!r} cannot be removed directly")
    event = state.store.remove_label(name, label, expect=None, actor=who.name, reason=body.reason)
    state.hub.notify()
    return event.to_json()


@router.post("/prompts/{name}/labels/{label}/rollback")
def rollback_label(
    request: Request,
    name: str,
    label: str,
    body: RollbackBody,
    who: Principal = requires("approver"),
) -> dict[str, Any]:
    state = _state(request)
    store = state.store
    _check_name(name)
    check_label_name(label)
    if label == LATEST:
        raise ApiError(403, "protected_label", "`latest` moves only on push")
    current = store.label_version(name, label)
    if current is None:
        raise UnknownRef(f"unknown ref {name}@{label}: label {label!r} is not set")
    target = rollback_target(store.label_moves(name, label), current, body.to)
    try:
        [event] = store.move_labels(
            [LabelMove(name, label, target, current, body.reason)],
            actor=who.name,
            details={"rollback": True},
        )
    except LabelConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    state.hub.notify()
    return event.to_json()


# -- reads across prompts -----------------------------------------------------------------------


@router.get("/snapshot")
def snapshot(
    request: Request,
    label: str = Query(...),
    names: str | None = Query(default=None),
    who: Principal = requires("viewer"),
) -> dict[str, Any]:
    """Versions at `label`, read in one transaction, with the feed position they reflect."""
    check_label_name(label)
    wanted = [n for n in (names or "").split(",") if n] or None
    seq, versions, resolutions = snapshot_resolved(_state(request).store, label, wanted)
    if wanted:
        missing = [n for n in wanted if n not in versions]
        if missing:
            raise UnknownRef(f"unknown ref {missing[0]}@{label}")
    prompts = {n: with_resolution(v.to_json(), resolutions[n]) for n, v in versions.items()}
    return {"label": label, "seq": seq, "prompts": prompts}


@router.get("/audit")
def audit(
    request: Request,
    prompt: str | None = None,
    label: str | None = None,
    before: int | None = Query(default=None, ge=1, le=MAX_ID),
    limit: int = Query(default=100, ge=1, le=1000),
    who: Principal = requires("viewer"),
) -> dict[str, Any]:
    events = _state(request).store.audit(prompt=prompt, label=label, before=before, limit=limit + 1)
    page = events[:limit]
    return {
        "events": [e.to_json() for e in page],
        "next": page[-1].id if len(events) > limit else None,
    }


@router.get("/events")
async def events(
    request: Request,
    since: int = Query(default=0, ge=0, le=MAX_ID),
    timeout: float = Query(default=25.0, ge=0, le=60),
    authorization: str | None = Header(default=None),
) -> dict[str, Any]:
    """Events with seq > since, oldest first; waits up to `timeout` seconds when there are none."""
    state = _state(request)
    await run_in_threadpool(_principal, request, authorization)
    deadline = time.monotonic() + timeout
    while True:
        wake = state.hub.current()
        found = await run_in_threadpool(
            state.store.audit, since=since, oldest_first=True, limit=500
        )
        remaining = deadline - time.monotonic()
        if found or remaining <= 0 or state.stopping or await request.is_disconnected():
            return {"events": [e.to_json() for e in found]}
        await state.hub.wait(min(remaining, 1.0), wake)


# -- promotion requests -------------------------------------------------------------------------


@router.post("/promotions", status_code=201)
def create_promotion_request(
    request: Request, body: PromotionBody, who: Principal = requires("editor")
) -> dict[str, Any]:
    state = _state(request)
    promotion = file_request(
        state,
        refs=body.refs,
        label=body.label,
        reason=body.reason,
        author=who.name,
        run_gate=body.run_gate,
    )
    state.hub.notify()
    return promotion.to_json()


@router.get("/promotions")
def promotions_list(
    request: Request,
    state_: str | None = Query(default=None, alias="state"),
    who: Principal = requires("viewer"),
) -> list[dict[str, Any]]:
    return [p.to_json() for p in list_promotions(_state(request).store, state_)]


@router.get("/promotions/{pid}")
def promotion_get(
    request: Request, pid: int = PID, who: Principal = requires("viewer")
) -> dict[str, Any]:
    return get_promotion(_state(request).store, pid).to_json()


@router.get("/promotions/{pid}/report")
def promotion_report(
    request: Request, pid: int = PID, who: Principal = requires("viewer")
) -> dict[str, Any]:
    store = _state(request).store
    promotion = get_promotion(store, pid)
    report = get_report(store, promotion.report_id) if promotion.report_id else None
    if report is None:
        raise UnknownRef(f"request {pid} has no report yet")
    return report


def _decide(
    request: Request, pid: int, body: DecisionBody, who: Principal, approve: bool
) -> dict[str, Any]:
    decided = decide(_state(request), pid, actor=who.name, approve=approve, comment=body.comment)
    return decided.to_json()


@router.post("/promotions/{pid}/approve")
def approve(
    request: Request,
    pid: int = PID,
    body: DecisionBody = Body(default=DecisionBody()),
    who: Principal = requires("approver"),
) -> dict[str, Any]:
    return _decide(request, pid, body, who, True)


@router.post("/promotions/{pid}/reject")
def reject(
    request: Request,
    pid: int = PID,
    body: DecisionBody = Body(default=DecisionBody()),
    who: Principal = requires("approver"),
) -> dict[str, Any]:
    return _decide(request, pid, body, who, False)


@router.post("/promotions/{pid}/report")
def upload_report(
    request: Request,
    pid: int = PID,
    report: dict[str, Any] = Body(...),
    who: Principal = requires("editor"),
) -> dict[str, Any]:
    state = _state(request)
    result = accept_report(state, pid, report, actor=who.name)
    state.hub.notify()
    return result.to_json()


# -- keys ---------------------------------------------------------------------------------------


@router.get("/keys")
def keys_list(request: Request, who: Principal = requires("admin")) -> list[dict[str, Any]]:
    return [k.to_json() for k in list_keys(_state(request).store)]


@router.post("/keys", status_code=201)
def keys_create(
    request: Request, body: KeyBody, who: Principal = requires("admin")
) -> dict[str, Any]:
    key = create_key(_state(request).store, body.name, body.role)
    return {"name": body.name, "role": body.role, "key": key}


@router.delete("/keys/{name}")
def keys_revoke(request: Request, name: str, who: Principal = requires("admin")) -> dict[str, Any]:
    state = _state(request)
    revoke_key(state.store, name)
    state.keys.clear()
    return {"name": name, "revoked": True}
