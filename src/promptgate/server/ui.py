"""The web UI (see the README): server-rendered Jinja2 pages, enhanced by htmx in the package.

Every page reads without JavaScript; htmx only polls a running gate's progress. People sign in by
pasting an API key. Sessions are held server-side (store/sessions.py): the cookie (signed with
itsdangerous) carries a random nonce and, once signed in, a random session id whose SHA-256 is a
row of `ui_sessions`; every request looks the row and its key up again. Sign-out and revoking the
key end the row, so a copied cookie is refused after them, and the signing secret (kept in the
registry's settings) cannot sign anyone in: no database row holds a usable session id.
Every POST form carries a CSRF token, an HMAC of the session's nonce with the server's secret.

Routes (outside /v1, left out of the OpenAPI schema):
  GET  /signin  POST /signin  POST /signout           the session
  GET  /                                              prompts with their labels
  GET  /prompts/{name}[?v=N]                          versions, labels, label histories
  GET  /prompts/{name}/diff?a=N&b=M                   side-by-side diff of two versions
  GET  /prompts/{name}/edit  POST same  GET|POST /new  the editor: ui_editor.py
  GET  /promotions[?state=]  POST /promotions         requests; file one (editor)
  GET  /promotions/new?prompt=NAME                    the request form (editor)
  GET  /promotions/{id}  /promotions/{id}/progress    a request, its gate progress (htmx)
  GET  /promotions/{id}/report.md | report.json       its report as Markdown or JSON
  POST /promotions/{id}/approve | reject              decisions (approver, never the author)
  GET  /audit?prompt=&label=&type=&before=ID          the audit log, newest first
  GET  /static/...                                    htmx and the stylesheet

Route handlers are plain `def`s (FastAPI runs them in its thread pool) and stay thin: the work is
in the store, registry and promotions modules the JSON API uses too.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import yaml
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.staticfiles import StaticFiles

from ..domain import AuditEvent, PromptVersion
from ..errors import BadInput, PromptgateError
from ..promptfile import NAME_RE
from ..refs import check_label_name
from ..report import _stats_line, to_markdown
from ..store import ROLES, get_promotion, get_report, list_promotions
from ..store.sessions import create_session, end_session, session_user
from ..verdict import sentence as comparison_sentence
from .auth import Principal
from .formvalues import whole_number
from .promotions import decide, file_request
from .state import ApiError, ServerState, status_for
from .ui_report import assertion_words, case_views, config_problem

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
COOKIE = "promptgate_session"
SESSION_MAX_AGE = 12 * 3600
AUDIT_PAGE = 50
STATES = ("gating", "passed", "failed", "approved", "rejected", "stale", "withdrawn")
EVENT_TYPES = ("push", "move", "remove", "request", "decision")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# -- errors ---------------------------------------------------------------------------------------


class PageError(Exception):
    """An error shown as an HTML page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class Redirect(Exception):
    """See other: answered with 303 and this location."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _error_for(exc: Exception) -> PageError:
    if isinstance(exc, PageError):
        return exc
    if isinstance(exc, ApiError):
        titles = {403: "Not allowed", 404: "Not found", 409: "Conflict"}
        return PageError(exc.status, titles.get(exc.status, "Cannot do that"), exc.detail)
    if isinstance(exc, RequestValidationError):
        first = (exc.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        return PageError(400, "Bad request", f"{where}: {first.get('msg', 'invalid')}")
    assert isinstance(exc, PromptgateError)
    status, _ = status_for(exc)
    titles = {404: "Not found", 403: "Not allowed", 412: "Conflict"}
    return PageError(status, titles.get(status, "Cannot do that"), str(exc))


class UiRoute(APIRoute):
    """Routes whose errors become HTML pages (the app's own handlers answer JSON for /v1)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except Redirect as exc:
                if request.headers.get("HX-Request"):  # htmx: move the whole page
                    return Response(status_code=204, headers={"HX-Redirect": exc.location})
                return RedirectResponse(exc.location, status_code=303)
            except (PageError, ApiError, PromptgateError, RequestValidationError) as exc:
                return _error_page(request, _error_for(exc))

        return run


def _error_page(request: Request, error: PageError) -> Response:
    ui: Ui | None = getattr(request.state, "ui", None)
    if ui is None:
        ui = Ui(request, request.app.state.pg, load_session(request), None)
    return ui.render("error.html", status=error.status, title=error.title, error=error)


# -- templates ------------------------------------------------------------------------------------


def _when(value: datetime | str | None) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    zone = " UTC" if value.utcoffset() is not None else ""
    return value.strftime("%Y-%m-%d %H:%M") + zone


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _preview(content: Mapping[str, Any], limit: int = 140) -> str:
    """The start of a prompt's text (its template, or its last message) for lists."""
    if isinstance(content.get("template"), str):
        text = content["template"]
    else:
        texts = [m.get("content") for m in content.get("messages", []) if isinstance(m, dict)]
        text = next((t for t in reversed(texts) if isinstance(t, str)), "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _version_label(version: Any) -> str:
    return "-" if version is None else f"v{version}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, dumps=_dumps, v=_version_label, quote=quote, preview=_preview)
    env.globals.update(
        stats_line=_stats_line,
        comparison_sentence=comparison_sentence,
        case_views=case_views,
        assertion_words=assertion_words,
        config_problem=config_problem,
        STATES=STATES,
        EVENT_TYPES=EVENT_TYPES,
    )
    return env


ENV = _environment()


# -- sessions and CSRF ----------------------------------------------------------------------------


@dataclass
class Session:
    """The cookie's content: a nonce (for CSRF tokens) and, once signed in, the session id
    (its row in ui_sessions names the key)."""

    nonce: str
    sid: str | None = None
    fresh: bool = False  # the cookie must be (re)written

    @classmethod
    def new(cls, sid: str | None = None) -> Session:
        return cls(nonce=secrets.token_urlsafe(18), sid=sid, fresh=True)


def _serializer(state: ServerState) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state.session_secret, salt="promptgate.ui.session")


def load_session(request: Request) -> Session:
    raw = request.cookies.get(COOKIE)
    if raw:
        try:
            data = _serializer(request.app.state.pg).loads(raw, max_age=SESSION_MAX_AGE)
        except BadSignature:
            data = None
        if isinstance(data, dict) and isinstance(data.get("n"), str):
            sid = data.get("s")  # (a cookie from before server-side sessions has none)
            return Session(nonce=data["n"], sid=sid if isinstance(sid, str) else None)
    return Session.new()


def csrf_token(state: ServerState, session: Session) -> str:
    return hmac.new(
        state.session_secret.encode(), b"csrf:" + session.nonce.encode(), hashlib.sha256
    ).hexdigest()


def _write_cookie(response: Response, request: Request, session: Session) -> None:
    state: ServerState = request.app.state.pg
    value = _serializer(state).dumps({"n": session.nonce, "s": session.sid})
    secure = request.url.scheme == "https" or (state.settings.public_url or "").startswith(
        "https://"
    )
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def _principal(state: ServerState, sid: str) -> Principal | None:
    """The key a live session signs in (None once signed out, expired or its key revoked)."""
    found = session_user(state.store, sid)
    if found is None or found.role not in ROLES:
        return None
    return Principal(found.name, found.role)


@dataclass
class Ui:
    """One request's page context: who is signed in, their session, and rendering."""

    request: Request
    state: ServerState
    session: Session
    user: Principal | None

    @property
    def csrf(self) -> str:
        return csrf_token(self.state, self.session)

    def can(self, role: str) -> bool:
        return self.user is not None and self.user.can(role)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = ENV.get_template(template).render(
            ui=self, user=self.user, csrf=self.csrf, path=self.request.url.path, **values
        )
        response = HTMLResponse(html, status_code=status)
        self.finish(response)
        return response

    def redirect(self, location: str) -> RedirectResponse:
        response = RedirectResponse(location, status_code=303)
        self.finish(response)
        return response

    def finish(self, response: Response) -> None:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        if self.session.fresh:
            _write_cookie(response, self.request, self.session)


def page(role: str | None) -> Any:
    """Depends: the page context; without a live session -> sign-in; without `role` -> 403."""

    def dependency(request: Request) -> Ui:
        state: ServerState = request.app.state.pg
        session = load_session(request)
        user = _principal(state, session.sid) if session.sid else None
        ui = Ui(request, state, session, user)
        request.state.ui = ui
        if role is None:
            return ui
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise Redirect("/signin?" + urlencode({"next": target}))
        if not user.can(role):
            raise PageError(
                403, "Not allowed", f"{user.name} is a {user.role}; this needs the {role} role."
            )
        return ui

    return Depends(dependency)


@dataclass
class Posted:
    ui: Ui
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)


def posted(role: str | None) -> Any:
    """Depends: a POSTed form, refused with 403 unless it carries the session's CSRF token."""

    async def dependency(request: Request, ui: Ui = page(role)) -> Posted:
        form = await request.form()
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if not hmac.compare_digest(fields.get("csrf", ""), ui.csrf):
            raise PageError(
                403,
                "Form expired",
                "This form did not carry a valid security token (it may have been "
                "opened before you signed in, or come from another site). Go back, "
                "reload the page and try again.",
            )
        return Posted(ui, fields)

    return Depends(dependency)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


# -- views of registry data -----------------------------------------------------------------------


class _Literal(yaml.SafeDumper):
    """YAML with multi-line strings as literal blocks, so prompt text reads as written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # list items indented under their key


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Literal.add_representer(str, _str_presenter)
KEY_ORDER = (
    "name",
    "description",
    "model",
    "template",
    "messages",
    "inputs",
    "tools",
    "response_format",
)
MODEL_ORDER = ("provider", "name")


def prompt_yaml(name: str, content: Mapping[str, Any]) -> str:
    """A version as the prompt file a person would write (keys in the documented order)."""
    data: dict[str, Any] = {"name": name}
    data.update({k: content[k] for k in KEY_ORDER if k in content})
    data.update({k: v for k, v in content.items() if k not in data})
    if isinstance(data.get("model"), dict):
        model = data["model"]
        data["model"] = {**{k: model[k] for k in MODEL_ORDER if k in model}, **model}
    if isinstance(data.get("messages"), list):
        data["messages"] = [
            {**{k: m[k] for k in ("role", "content") if k in m}, **m} if isinstance(m, dict) else m
            for m in data["messages"]
        ]
    return yaml.dump(data, Dumper=_Literal, sort_keys=False, allow_unicode=True, width=1_000_000)


@dataclass
class DiffLine:
    number: int | None
    parts: list[tuple[bool, str]]  # (changed?, text) segments


@dataclass
class DiffRow:
    kind: str  # equal | replace | delete | insert
    left: DiffLine
    right: DiffLine


def _segments(a: str, b: str) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    """The two lines cut into (changed?, text) runs, compared word by word."""
    wa, wb = re.split(r"(\s+)", a), re.split(r"(\s+)", b)
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    if matcher.ratio() < 0.3:  # little in common: the whole line changed
        return [(True, a)], [(True, b)]
    left: list[tuple[bool, str]] = []
    right: list[tuple[bool, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        for out, text in ((left, "".join(wa[i1:i2])), (right, "".join(wb[j1:j2]))):
            if not text:
                continue
            changed = op != "equal"
            if out and out[-1][0] == changed:
                out[-1] = (changed, out[-1][1] + text)
            else:
                out.append((changed, text))
    return left, right


def side_by_side(a: list[str], b: list[str]) -> list[DiffRow]:
    """Rows of a side-by-side diff (difflib), with the changed part of replaced lines marked."""
    rows: list[DiffRow] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [
                DiffRow("equal", DiffLine(i + 1, [(False, a[i])]), DiffLine(j + 1, [(False, b[j])]))
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        for i, j in zip_longest(range(i1, i2), range(j1, j2)):
            if i is not None and j is not None:
                left, right = _segments(a[i], b[j])
                rows.append(DiffRow("replace", DiffLine(i + 1, left), DiffLine(j + 1, right)))
            elif i is not None:
                rows.append(DiffRow("delete", DiffLine(i + 1, [(True, a[i])]), DiffLine(None, [])))
            elif j is not None:
                rows.append(DiffRow("insert", DiffLine(None, []), DiffLine(j + 1, [(True, b[j])])))
    return rows


def label_histories(events: Iterable[AuditEvent]) -> dict[str, list[AuditEvent]]:
    """Each label's moves (pushes move `latest`), newest first."""
    out: dict[str, list[AuditEvent]] = {}
    for event in events:
        if event.label and event.type in ("push", "move", "remove"):
            out.setdefault(event.label, []).append(event)
    return dict(sorted(out.items(), key=lambda item: (item[0] != "latest", item[0])))


def _check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise PageError(404, "Not found", f"unknown prompt {name!r}")
    return name


def _pick(history: list[PromptVersion], number: int | None, default: int) -> PromptVersion:
    by_number = {v.version: v for v in history}
    if number is None:
        return history[default]
    if number not in by_number:
        raise PageError(404, "Not found", f"{history[0].name} has no version v{number}")
    return by_number[number]


def _promotion_view(state: ServerState, pid: int) -> dict[str, Any]:
    promotion = get_promotion(state.store, pid)
    report = get_report(state.store, promotion.report_id) if promotion.report_id else None
    return {"p": promotion, "report": report}


# -- routes ---------------------------------------------------------------------------------------

router = APIRouter(
    route_class=UiRoute, include_in_schema=False, default_response_class=HTMLResponse
)


@router.get("/signin")
def signin_form(next: str = "/", ui: Ui = page(None)) -> Response:
    if ui.user is not None:
        return ui.redirect(_safe_next(next))
    if ui.session.sid is not None:  # signed out elsewhere, expired or revoked: start over
        ui.session = Session.new()
    return ui.render("signin.html", title="Sign in", next=_safe_next(next))


@router.post("/signin")
def signin(form: Posted = posted(None)) -> Response:
    ui = form.ui
    target = _safe_next(form.get("next"))
    who = ui.state.keys.lookup(form.get("key").strip()) if form.get("key").strip() else None
    if who is None:
        return ui.render(
            "signin.html",
            status=401,
            title="Sign in",
            next=target,
            error="That key is unknown or has been revoked.",
        )
    if ui.session.sid is not None:  # signing in again replaces the session
        end_session(ui.state.store, ui.session.sid)
    # a new nonce and session id: no token survives signing in
    ui.session = Session.new(sid=create_session(ui.state.store, who.name, SESSION_MAX_AGE))
    return ui.redirect(target)


@router.post("/signout")
def signout(form: Posted = posted(None)) -> Response:
    ui = form.ui
    if ui.session.sid is not None:  # ended server-side: a copy of the cookie is refused too
        end_session(ui.state.store, ui.session.sid)
    ui.session = Session.new()
    return ui.redirect("/signin")


@router.get("/")
def prompt_list(ui: Ui = page("viewer")) -> Response:
    store = ui.state.store
    labels: dict[str, list[Any]] = {}
    for label in store.labels():
        labels.setdefault(label.prompt, []).append(label)
    return ui.render("prompts.html", title="Prompts", prompts=store.list_prompts(), labels=labels)


@router.get("/prompts/{name}")
def prompt_page(
    name: str,
    v: int | None = Query(default=None, ge=1),
    saved: str | None = None,
    rolled: str | None = None,
    ui: Ui = page("viewer"),
) -> Response:
    return prompt_view(ui, name, v, saved=saved, rolled=rolled)


def prompt_view(
    ui: Ui,
    name: str,
    v: int | None,
    *,
    saved: str | None = None,
    rolled: str | None = None,
    rollback_error: tuple[str, str] | None = None,
) -> Response:
    """The prompt's page, on version `v`, else on the gate's label (production) when set."""
    store = ui.state.store
    history = store.history(_check_name(name))
    home = ui.state.settings.config.gate.label
    if v is None:
        v = store.label_version(name, home)
    shown = _pick(history, v, -1)
    labels = store.labels(name)
    return ui.render(
        "prompt.html",
        status=422 if rollback_error else 200,
        title=name,
        name=name,
        history=list(reversed(history)),
        shown=shown,
        shown_yaml=prompt_yaml(name, shown.content),
        labels=labels,
        current={x.label: x.version for x in labels},
        home=home,
        histories=label_histories(
            store.audit(prompt=name, types=("push", "move", "remove"), limit=1000)
        ),
        saved=saved,
        rolled=rolled if rolled in {x.label for x in labels} else None,
        rollback_error=rollback_error,
        diff_a=history[-2].version if len(history) > 1 else history[-1].version,
        diff_b=history[-1].version,
    )


@router.get("/prompts/{name}/diff")
def diff_page(
    name: str,
    a: int | None = Query(default=None, ge=1),
    b: int | None = Query(default=None, ge=1),
    ui: Ui = page("viewer"),
) -> Response:
    history = ui.state.store.history(_check_name(name))
    left = _pick(history, a, -2 if len(history) > 1 else -1)
    right = _pick(history, b, -1)
    rows = side_by_side(
        prompt_yaml(name, left.content).splitlines(), prompt_yaml(name, right.content).splitlines()
    )
    return ui.render(
        "diff.html",
        title=f"{name}: v{left.version} vs v{right.version}",
        name=name,
        history=list(reversed(history)),
        left=left,
        right=right,
        rows=rows,
        same=left.content_hash == right.content_hash,
    )


@router.get("/promotions")
def promotions_page(state: str | None = None, ui: Ui = page("viewer")) -> Response:
    wanted = state if state in STATES else None
    return ui.render(
        "promotions.html",
        title="Promotion requests",
        state=wanted,
        promotions=list_promotions(ui.state.store, wanted),
    )


def request_labels(ui: Ui) -> list[str]:
    """The labels a request may name: every label in use, and the protected ones."""
    store = ui.state.store
    config = ui.state.settings.config
    return sorted(
        {x.label for x in store.labels()} - {"latest"}
        | set(config.protected_labels)
        | {config.gate.label}
    )


def _request_form(
    ui: Ui,
    name: str,
    version: int | None = None,
    label: str | None = None,
    reason: str = "",
    error: str | None = None,
) -> Response:
    store = ui.state.store
    history = list(reversed(store.history(_check_name(name))))
    labels = request_labels(ui)
    return ui.render(
        "promote.html",
        status=422 if error else 200,
        title=f"Request promotion of {name}",
        name=name,
        history=history,
        version=version or history[0].version,
        label=label or ui.state.settings.config.gate.label,
        labels=labels,
        current={x.label: x.version for x in store.labels(name)},
        reason=reason,
        error=error,
    )


@router.get("/promotions/new")
def request_form(
    prompt: str = Query(...),
    version: int | None = Query(default=None, ge=1),
    label: str | None = None,
    ui: Ui = page("editor"),
) -> Response:
    return _request_form(ui, prompt, version, label)


@router.post("/promotions")
def request_file(form: Posted = posted("editor")) -> Response:
    ui = form.ui
    assert ui.user is not None
    name, label, reason = form.get("prompt"), form.get("label").strip(), form.get("reason")
    version = whole_number(form.get("version"))
    try:
        if version is None:
            raise BadInput("choose a version")
        if not reason.strip():
            raise BadInput("a reason is required")
        check_label_name(label)
        known = request_labels(ui)
        if label not in known:
            raise BadInput(
                f"there is no label {label!r}: choose one of " + ", ".join(known)
                if known
                else f"there is no label {label!r}"
            )
        ui.state.store.get_version(_check_name(name), version)
        promotion = file_request(
            ui.state,
            refs=[f"{name}@v{version}"],
            label=label,
            reason=reason.strip(),
            author=ui.user.name,
            run_gate=True,
        )
    except BadInput as exc:
        return _request_form(ui, name, version, label, reason, error=str(exc))
    ui.state.hub.notify()
    return ui.redirect(f"/promotions/{promotion.id}")


@router.get("/promotions/{pid}")
def promotion_page(pid: int, ui: Ui = page("viewer")) -> Response:
    view = _promotion_view(ui.state, pid)
    return ui.render("promotion.html", title=f"Request #{pid}", **view)


@router.get("/promotions/{pid}/progress")
def promotion_progress(pid: int, ui: Ui = page("viewer")) -> Response:
    """The htmx fragment polled while the gate runs; once it is done the page reloads."""
    promotion = get_promotion(ui.state.store, pid)
    response = ui.render("progress.html", p=promotion)
    if promotion.state != "gating":
        response.headers["HX-Refresh"] = "true"
    return response


def _report_of(ui: Ui, pid: int) -> dict[str, Any]:
    report = _promotion_view(ui.state, pid)["report"]
    if report is None:
        raise PageError(404, "Not found", f"request {pid} has no report yet")
    return dict(report)


@router.get("/promotions/{pid}/report.md")
def report_markdown(pid: int, ui: Ui = page("viewer")) -> Response:
    response = PlainTextResponse(
        to_markdown(_report_of(ui, pid)), media_type="text/markdown; charset=utf-8"
    )
    ui.finish(response)
    return response


@router.get("/promotions/{pid}/report.json")
def report_json(pid: int, ui: Ui = page("viewer")) -> Response:
    body = json.dumps(_report_of(ui, pid), indent=2, ensure_ascii=False)
    response = Response(body, media_type="application/json")
    ui.finish(response)
    return response


def _decide(form: Posted, pid: int, approve: bool) -> Response:
    comment = form.get("comment").strip() or None
    assert form.ui.user is not None
    decide(form.ui.state, pid, actor=form.ui.user.name, approve=approve, comment=comment)
    return form.ui.redirect(f"/promotions/{pid}")


@router.post("/promotions/{pid}/approve")
def approve(pid: int, form: Posted = posted("approver")) -> Response:
    return _decide(form, pid, True)


@router.post("/promotions/{pid}/reject")
def reject(pid: int, form: Posted = posted("approver")) -> Response:
    return _decide(form, pid, False)


@router.get("/audit")
def audit_page(
    prompt: str = "",
    label: str = "",
    type: str = "",
    before: int | None = Query(default=None, ge=1),
    ui: Ui = page("viewer"),
) -> Response:
    events = ui.state.store.audit(
        prompt=prompt or None,
        label=label or None,
        before=before,
        types=(type,) if type in EVENT_TYPES else None,
        limit=AUDIT_PAGE + 1,
    )
    shown = events[:AUDIT_PAGE]
    filters = {k: v for k, v in (("prompt", prompt), ("label", label), ("type", type)) if v}
    older = urlencode({**filters, "before": shown[-1].id}) if len(events) > AUDIT_PAGE else None
    return ui.render(
        "audit.html",
        title="Audit log",
        events=shown,
        filters=filters,
        prompt=prompt,
        label=label,
        type=type,
        before=before,
        older=older,
        newest=urlencode(filters),
    )


def mount_ui(app: FastAPI) -> None:
    """Add the web UI's pages and static files to the app."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
