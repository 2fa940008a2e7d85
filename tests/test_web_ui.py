"""The web UI over HTTP: sessions, CSRF, roles, escaping, the edit form and approvals.

A real server (ServerThread) over a fresh SQLite registry; the gate's model calls go to the local
OpenAI-compatible test server."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer

from promptgate.config import Config, GateConfig
from promptgate.domain import LabelMove, PromotionRequest
from promptgate.promptfile import validate_content
from promptgate.registry import push_specs
from promptgate.report import to_markdown
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.server.ui_report import assertion_words
from promptgate.store import (
    Store,
    create_key,
    get_promotion,
    get_report,
    get_setting,
    list_promotions,
    revoke_key,
)
from promptgate.store.schema import ui_sessions
from promptgate.testing import OpenAITestServer

GREET_SUITE = """\
prompt: greet
cases:
  - id: hello
    vars: {who: world}
    assert: [{type: contains, value: world}]
"""
XSS_SUITE = """\
prompt: xss
cases:
  - id: fails-and-shows-output
    assert: [{type: contains, value: "never in the output"}]
"""
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@dataclass
class Site:
    url: str
    store: Store
    keys: dict[str, str]
    store_root: Path = Path(".")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    @contextmanager
    def signed_in(self, who: str) -> Iterator[httpx.Client]:
        with self.client() as c:
            r = c.post(
                "/signin",
                data={"key": self.keys[who], "next": "/", "csrf": csrf_of(c.get("/signin"))},
            )
            assert r.status_code == 303, r.text
            yield c


def csrf_of(response: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-zA-Z_-]+)"', response.text)
    assert found, response.text
    return found.group(1)


def push(
    store: Store, name: str, content: dict[str, Any], message: str = "m", author: str = "tester"
) -> int:
    [result] = push_specs(store, [validate_content(name, content)], message=message, author=author)
    return result.version.version


def greet(text: str = "Hello {{ who }}") -> dict[str, Any]:
    return {"model": {"name": "gpt-test"}, "template": text}


def wait_for_gate(store: Store, pid: int, timeout: float = 20) -> PromotionRequest:
    deadline = time.monotonic() + timeout
    while True:
        promotion = get_promotion(store, pid)
        if promotion.state != "gating":
            return promotion
        assert time.monotonic() < deadline, "the gate did not finish"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def site(tmp_path: Path, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    llm.reset()
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "greet.yaml").write_text(GREET_SUITE)
    (tmp_path / "evals" / "xss.yaml").write_text(XSS_SUITE)
    config = Config(root=tmp_path, gate=GateConfig(concurrency=4, retries=0, backoff_s=0.01))
    app = create_app(
        ServerSettings(registry=f"sqlite:///{tmp_path / 'registry.db'}", config=config)
    )
    store = app.state.pg.store
    keys = {
        name: create_key(store, name, role)
        for name, role in (
            ("viewer", "viewer"),
            ("editor", "editor"),
            ("approver", "approver"),
            ("approver2", "approver"),
            ("admin", "admin"),
        )
    }
    push(store, "greet", greet())
    with ServerThread(app) as server:
        yield Site(url=server.url, store=store, keys=keys, store_root=tmp_path)


# -- sessions -------------------------------------------------------------------------------------


def test_signin_sets_an_httponly_samesite_session_cookie(site: Site) -> None:
    with site.client() as c:
        form = c.get("/signin")
        assert form.status_code == 200 and 'name="key"' in form.text
        r = c.post(
            "/signin",
            data={"key": site.keys["editor"], "next": "/prompts/greet", "csrf": csrf_of(form)},
        )
        assert r.status_code == 303 and r.headers["location"] == "/prompts/greet"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("promptgate_session=")
        attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
        assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
        assert site.keys["editor"] not in cookie  # the key itself never goes in the cookie
        page = c.get("/prompts/greet")
        assert page.status_code == 200 and "editor" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        # signing out ends the session
        out = c.post("/signout", data={"csrf": csrf_of(page)})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert c.get("/").status_code == 303


def test_a_bad_key_is_refused_on_the_form(site: Site) -> None:
    with site.client() as c:
        r = c.post("/signin", data={"key": "pg_nope", "csrf": csrf_of(c.get("/signin"))})
        assert r.status_code == 401 and "unknown or has been revoked" in r.text
        assert c.get("/").status_code == 303


def test_open_redirects_are_refused(site: Site) -> None:
    with site.client() as c:
        r = c.post(
            "/signin",
            data={
                "key": site.keys["viewer"],
                "next": "//evil.example/x",
                "csrf": csrf_of(c.get("/signin")),
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/prompts/greet",
        "/prompts/greet/diff?a=1&b=1",
        "/prompts/greet/edit",
        "/new",
        "/promotions",
        "/promotions/new?prompt=greet",
        "/promotions/1",
        "/promotions/1/progress",
        "/promotions/1/report.md",
        "/audit?prompt=greet",
        "/prompts/unknown",
    ],
)
def test_pages_redirect_to_signin_without_a_session(site: Site, path: str) -> None:
    with site.client() as c:
        r = c.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == "/signin?" + urlencode({"next": path})
        assert "greet" not in r.text
        # a forged (unsigned) cookie is no session either
        c.cookies.set("promptgate_session", '{"n": "x", "k": "admin"}')
        assert c.get(path).status_code == 303


def test_htmx_polls_without_a_session_are_sent_to_signin(site: Site) -> None:
    with site.client() as c:
        r = c.get("/promotions/1/progress", headers={"HX-Request": "true"})
        assert r.status_code == 204
        assert r.headers["hx-redirect"].startswith("/signin?next=")


def test_signin_and_static_files_need_no_session(site: Site) -> None:
    with site.client() as c:
        assert c.get("/signin").status_code == 200
        css = c.get("/static/ui.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        js = c.get("/static/htmx.min.js")
        assert js.status_code == 200 and "htmx" in js.text[:200]


def test_posts_without_the_csrf_token_are_403(site: Site) -> None:
    with site.signed_in("editor") as c:
        text = "name: greet\nmodel: {name: gpt-test}\ntemplate: 'Hi {{ who }}'\n"
        for data in (
            {"yaml": text, "message": "m"},
            {"yaml": text, "message": "m", "csrf": "0" * 64},
        ):
            r = c.post("/prompts/greet/edit", data=data)
            assert r.status_code == 403 and "security token" in r.text
        assert [v.version for v in site.store.history("greet")] == [1]
        assert c.post("/signout").status_code == 403
        assert (
            c.post(
                "/promotions",
                data={"prompt": "greet", "version": "1", "label": "production", "reason": "r"},
            ).status_code
            == 403
        )
        assert c.get("/").status_code == 200  # still signed in
    with site.client() as c:  # sign-in itself needs the token of the page it came from
        r = c.post("/signin", data={"key": site.keys["editor"]})
        assert r.status_code == 403
        assert c.get("/").status_code == 303  # not signed in
    with site.signed_in("editor") as c, site.signed_in("approver") as other:
        # a token belongs to its session: another session's token is refused
        r = c.post(
            "/prompts/greet/edit",
            data={"yaml": text, "message": "m", "csrf": csrf_of(other.get("/"))},
        )
        assert r.status_code == 403


def test_signing_in_again_rotates_the_csrf_token(site: Site) -> None:
    with site.client() as c:
        before = csrf_of(c.get("/signin"))
        c.post("/signin", data={"key": site.keys["viewer"], "csrf": before})
        assert csrf_of(c.get("/")) != before


def test_a_revoked_keys_session_goes_back_to_signin(site: Site) -> None:
    with site.signed_in("editor") as c:
        assert c.get("/").status_code == 200
        revoked = httpx.delete(
            site.url + "/v1/keys/editor", headers={"Authorization": f"Bearer {site.keys['admin']}"}
        )
        assert revoked.status_code == 200
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/signin")
        form = c.get("/signin")
        assert form.status_code == 200  # a fresh, signed-out session
        again = c.post("/signin", data={"key": site.keys["editor"], "csrf": csrf_of(form)})
        assert again.status_code == 401
    with site.signed_in("viewer") as c:  # revoked in the store by another process (the CLI)
        revoke_key(site.store, "viewer")
        assert c.get("/audit").status_code == 303


def _replay(site: Site, cookie: str) -> httpx.Response:
    """GET / in a fresh client holding only `cookie` as the session cookie."""
    with site.client() as other:
        other.cookies.set("promptgate_session", cookie)
        return other.get("/")


def test_a_cookie_copied_before_signout_is_refused_after_it(site: Site) -> None:
    with site.signed_in("editor") as c:
        saved = c.cookies["promptgate_session"]
        assert _replay(site, saved).status_code == 200  # the copy works while signed in
        out = c.post("/signout", data={"csrf": csrf_of(c.get("/"))})
        assert out.status_code == 303
    replayed = _replay(site, saved)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/signin")
    with site.client() as other:  # nor can it post a form
        other.cookies.set("promptgate_session", saved)
        form = other.get("/signin")
        assert form.status_code == 200 and 'name="key"' in form.text


def test_revoking_a_key_ends_its_sessions_server_side(site: Site) -> None:
    with site.signed_in("approver") as one, site.signed_in("approver") as two:
        saved = [one.cookies["promptgate_session"], two.cookies["promptgate_session"]]
    assert all(_replay(site, cookie).status_code == 200 for cookie in saved)
    revoke_key(site.store, "approver")  # as `promptgate keys revoke` does, from another process
    assert all(_replay(site, cookie).status_code == 303 for cookie in saved)
    with site.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(ui_sessions.c.revoked_at).where(ui_sessions.c.key_name == "approver")
        ).all()
    assert len(rows) == 2 and all(row.revoked_at for row in rows)


def test_the_secret_in_the_database_forges_no_session(site: Site) -> None:
    """A database reader has the cookie-signing secret and the sessions table; neither signs
    anyone in: sessions are rows looked up by the SHA-256 of an id only cookies hold."""
    with site.signed_in("admin") as c:  # a live admin session exists
        assert c.get("/audit").status_code == 200
    secret = get_setting(site.store, "session_secret", lambda: "unused")
    signer = URLSafeTimedSerializer(secret, salt="promptgate.ui.session")
    with site.store.engine.connect() as conn:
        [stored] = conn.execute(
            sa.select(ui_sessions.c.id_hash).where(ui_sessions.c.key_name == "admin")
        ).all()
    forged = [
        {"n": "x", "k": "admin"},  # the old cookie: a key's name
        {"n": "x", "s": stored.id_hash},  # the stored hash as the id
        {"n": "x", "s": "admin"},
    ]
    for payload in forged:
        r = _replay(site, signer.dumps(payload))
        assert r.status_code == 303 and r.headers["location"].startswith("/signin"), payload


def test_roles_are_enforced_with_a_403_page(site: Site) -> None:
    with site.signed_in("viewer") as c:
        assert c.get("/prompts/greet").status_code == 200
        r = c.get("/prompts/greet/edit")
        assert r.status_code == 403 and "viewer" in r.text and "<html" in r.text
        assert c.get("/promotions/new?prompt=greet").status_code == 403
        token = csrf_of(c.get("/"))
        r = c.post("/prompts/greet/edit", data={"csrf": token, "yaml": "x", "message": "m"})
        assert r.status_code == 403
        assert "Edit" not in c.get("/prompts/greet").text.split("<main")[1].split("Labels")[0]


def test_unknown_things_are_404_pages(site: Site) -> None:
    with site.signed_in("viewer") as c:
        for path in (
            "/prompts/nope",
            "/prompts/Bad%20Name",
            "/prompts/greet?v=9",
            "/prompts/nope/diff",
            "/promotions/999",
            "/promotions/999/report.md",
        ):
            r = c.get(path)
            assert r.status_code == 404, path
            assert "<html" in r.text and "Not found" in r.text
        r = c.get("/promotions/abc")
        assert r.status_code == 400 and "<html" in r.text


# -- pages ----------------------------------------------------------------------------------------


def test_prompt_page_shows_versions_labels_and_label_history(site: Site) -> None:
    push(site.store, "greet", greet("Hi {{ who }}"), message="friendlier", author="bob")
    site.store.move_labels([LabelMove("greet", "staging", 1, None, "try it")], actor="carol")
    site.store.move_labels([LabelMove("greet", "staging", 2, 1, "ship v2")], actor="carol")
    with site.signed_in("viewer") as c:
        page = c.get("/prompts/greet").text
        assert "friendlier" in page and "bob" in page
        history = page.split("Label history")[1]
        assert "staging" in history and "ship v2" in history and "try it" in history
        assert "v1 → v2" in history and "carol" in history
        old = c.get("/prompts/greet?v=1").text
        assert "Hello {{ who }}" in old
        listing = c.get("/").text
        assert "staging → v2" in listing and "Hi {{ who }}" in listing


def test_side_by_side_diff_marks_the_change(site: Site) -> None:
    push(site.store, "greet", greet("Hello there {{ who }}"))
    with site.signed_in("viewer") as c:
        r = c.get("/prompts/greet/diff", params={"a": 1, "b": 2})
        assert r.status_code == 200
        row = next(x for x in r.text.split("<tr") if 'class="replace"' in x)
        assert "<mark>there </mark>" in row or "<mark> there</mark>" in row
        same = c.get("/prompts/greet/diff", params={"a": 2, "b": 2})
        assert "identical content" in same.text


def test_edit_creates_a_version_by_the_signed_in_key(site: Site) -> None:
    with site.signed_in("editor") as c:
        form = c.get("/prompts/greet/edit")
        text = re.search(
            r"<textarea[^>]*name=\"yaml\"[^>]*>\n?(.*?)</textarea>", form.text, re.S
        ).group(1)  # (a newline right after the tag is not content, as browsers read it)
        assert text.startswith("name: greet\n") and "Hello {{ who }}" in text
        r = c.post(
            "/prompts/greet/edit",
            data={
                "csrf": csrf_of(form),
                "yaml": text.replace("Hello", "Howdy"),
                "message": "cowboy greeting",
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/prompts/greet?v=2&saved=new"
        v2 = site.store.get_version("greet", 2)
        assert v2.author == "editor" and v2.message == "cowboy greeting"
        assert v2.content["template"] == "Howdy {{ who }}"
        assert "Saved as a new version" in c.get(r.headers["location"]).text
        # saving the form unchanged stores nothing new
        same = c.post(
            "/prompts/greet/edit",
            data={
                "csrf": csrf_of(form),
                "yaml": text.replace("Hello", "Howdy"),
                "message": "again",
            },
        )
        assert same.headers["location"].endswith("saved=same")
        assert len(site.store.history("greet")) == 2


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name: greet\nmodel: [unclosed\n", "Line 3 of the prompt file: invalid YAML"),
        ("name: greet\nmodel: {name: m}\ntemplate: 'Hello {{ who '\n", "template"),
        ("name: greet\ntemplate: hi\n", "model"),
        ("name: other\nmodel: {name: m}\ntemplate: hi\n", "the YAML names 'other'"),
        (
            "name: greet\nmodel: {name: m}\ntemplate: '{{ x }}'\ninputs: {x: {from: nowhere}}\n",
            "nowhere",
        ),
    ],
)
def test_invalid_edits_show_the_error_inline_and_store_nothing(
    site: Site, text: str, error: str
) -> None:
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/prompts/greet/edit"))
        r = c.post("/prompts/greet/edit", data={"csrf": token, "yaml": text, "message": "m"})
        assert r.status_code == 422
        assert 'role="alert"' in r.text and "Not saved" in r.text
        assert error.replace("'", "&#39;") in r.text
        kept = text.replace("'", "&#39;").replace("<", "&lt;")
        assert kept in r.text  # the text stays in the form
    assert [v.version for v in site.store.history("greet")] == [1]
    assert [e.type for e in site.store.audit(prompt="greet")] == ["push"]


def test_an_unknown_filter_is_an_inline_error_not_a_500(site: Site) -> None:
    text = "name: greet\nmodel: {name: m}\ntemplate: 'Hello {{ who | nosuchfilter }}'\n"
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/prompts/greet/edit"))
        r = c.post("/prompts/greet/edit", data={"csrf": token, "yaml": text, "message": "m"})
        assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
        assert "Not saved" in r.text and "internal" not in r.text
        assert "No filter named &#39;nosuchfilter&#39;: check its spelling" in r.text
        assert "Line 3 of the prompt file" in r.text
        # the error sits beside the text box it is about, which keeps what was typed
        box = r.text.index('<textarea id="yaml"')
        assert r.text.index('id="form-error"') < box
        assert 'aria-describedby="form-error"' in r.text[box : box + 200]
        assert text.replace("'", "&#39;") in r.text
    assert len(site.store.history("greet")) == 1


def test_a_variable_nothing_provides_is_a_warning_before_saving(site: Site) -> None:
    text = (
        "name: greet\nmodel: {name: gpt-test}\ntemplate: 'Hello {{ who }}, {{ customer_tier }}'\n"
    )
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/prompts/greet/edit"))
        data = {"csrf": token, "yaml": text, "message": "tiers"}
        r = c.post("/prompts/greet/edit", data=data)
        assert r.status_code == 200 and 'id="form-warning"' in r.text
        assert "customer_tier" in r.text and "1 of 1 suite cases" in r.text and "hello" in r.text
        assert "who }}" not in r.text.split('id="form-warning"')[1].split("</div>")[0]
        assert 'name="confirm" value="customer_tier"' in r.text and "Save anyway" in r.text
        assert len(site.store.history("greet")) == 1  # nothing saved yet
        # confirming the names shown saves it
        r = c.post("/prompts/greet/edit", data={**data, "confirm": "customer_tier"})
        assert r.status_code == 303 and r.headers["location"].endswith("saved=new")
    assert len(site.store.history("greet")) == 2


def test_a_default_silences_the_variable_warning(site: Site) -> None:
    text = (
        "name: greet\nmodel: {name: gpt-test}\ntemplate: 'Hello {{ who }}, {{ tier }}'\n"
        "inputs: {tier: {default: gold}}\n"
    )
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/prompts/greet/edit"))
        r = c.post("/prompts/greet/edit", data={"csrf": token, "yaml": text, "message": "m"})
        assert r.status_code == 303
    assert len(site.store.history("greet")) == 2


def test_an_edit_needs_a_message(site: Site) -> None:
    with site.signed_in("editor") as c:
        form = c.get("/prompts/greet/edit")
        r = c.post(
            "/prompts/greet/edit",
            data={
                "csrf": csrf_of(form),
                "yaml": "name: greet\nmodel: {name: m}\ntemplate: x\n",
                "message": "  ",
            },
        )
        assert r.status_code == 422 and "change message is required" in r.text
    assert len(site.store.history("greet")) == 1


def test_new_prompt_form(site: Site) -> None:
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/new"))
        r = c.post(
            "/new",
            data={
                "csrf": token,
                "message": "first",
                "yaml": "name: fresh\nmodel: {name: m}\ntemplate: hi\n",
            },
        )
        assert r.status_code == 303 and r.headers["location"].startswith("/prompts/fresh?v=1")
        dup = c.post(
            "/new",
            data={
                "csrf": token,
                "message": "again",
                "yaml": "name: greet\nmodel: {name: m}\ntemplate: hi\n",
            },
        )
        assert dup.status_code == 422 and "exists already" in dup.text
    assert len(site.store.history("greet")) == 1


def test_audit_log_filters_and_pages(site: Site) -> None:
    for i in range(60):
        push(site.store, "greet", greet(f"Hello {i} {{{{ who }}}}"), message=f"change {i}")
    push(site.store, "other", greet(), message="other prompt")
    with site.signed_in("viewer") as c:
        first = c.get("/audit")
        assert first.status_code == 200
        assert first.text.count('class="ev-') == 50 and "other prompt" in first.text
        older = re.search(r'href="/audit\?([^"]+)">Older events', first.text).group(1)
        second = c.get("/audit?" + older.replace("&amp;", "&"))
        assert second.text.count('class="ev-') == 12 and "Older events" not in second.text
        assert "Newest" in second.text
        only = c.get("/audit", params={"prompt": "other"})
        assert only.text.count('class="ev-') == 1
        labelled = c.get("/audit", params={"prompt": "greet", "label": "latest"})
        assert labelled.text.count('class="ev-') == 50
        assert "prompt=greet" in labelled.text.split("Older events")[0].rsplit("href=", 1)[1]
        assert c.get("/audit", params={"type": "move"}).text.count('class="ev-') == 0


# -- promotions -----------------------------------------------------------------------------------


def file_via_form(
    c: httpx.Client, name: str, version: int, label: str = "production", reason: str = "ship it"
) -> int:
    form = c.get("/promotions/new", params={"prompt": name})
    assert form.status_code == 200
    r = c.post(
        "/promotions",
        data={
            "csrf": csrf_of(form),
            "prompt": name,
            "version": str(version),
            "label": label,
            "reason": reason,
        },
    )
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def test_request_form_runs_the_gate_and_shows_progress_then_report(site: Site) -> None:
    push(site.store, "greet", greet("Hello dear {{ who }}"))
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "greet", 2)
        page = c.get(f"/promotions/{pid}")
        assert page.status_code == 200
        promotion = wait_for_gate(site.store, pid)
        assert promotion.state == "passed" and promotion.author == "editor"
        fragment = c.get(f"/promotions/{pid}/progress")
        assert fragment.headers["hx-refresh"] == "true"
        page = c.get(f"/promotions/{pid}").text
        assert "PASS" in page and "greet@v2" in page and "greet.yaml" in page
        assert "Waiting for an approver" in page
        md = c.get(f"/promotions/{pid}/report.md")
        report = get_report(site.store, promotion.report_id)
        assert md.text == to_markdown(report)


def test_the_report_shows_every_case_with_inputs_and_both_outputs(site: Site) -> None:
    site.store.move_labels([LabelMove("greet", "production", 1, None, "first")], actor="t")
    push(site.store, "greet", greet("Hello dear {{ who }}"))
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "greet", 2)
        promotion = wait_for_gate(site.store, pid)
        report = get_report(site.store, promotion.report_id)
        [case] = report["suites"][0]["cases"]
        assert case["vars"] == {"who": "world"} and case["assertions"][0]["type"] == "contains"
        page = c.get(f"/promotions/{pid}").text
    # the passing case is there, collapsed, with its input and both sides' outputs
    [block] = re.findall(r'<details class="case pass">.*?</details>', page, re.DOTALL)
    assert "<b>hello</b>" in block and "<code>who</code>" in block and "world" in block
    assert "[gpt-test] Hello dear world" in block  # the candidate, v2
    assert "[gpt-test] Hello world" in block  # production, v1, same case
    assert "Production (v1)" in block and "Candidate (v2)" in block
    assert "must contain &#39;world&#39;" in block and 'title="contains: ' in block


CASE_KEYS = {
    "id", "line", "passed", "flaky", "runs", "runs_passed", "change", "error", "cached",
    "output", "failed_assertions", "vars", "assertions",
}  # fmt: skip


def test_a_failing_downstream_case_shows_the_upstream_output_it_was_given(site: Site) -> None:
    push(site.store, "facts", {"model": {"name": "gpt-test"}, "template": "Facts of {{ who }}"})
    say = {"model": {"name": "gpt-test"}, "inputs": {"facts": {"from": "facts"}}}
    push(site.store, "say", {**say, "template": "Say {{ facts }}"})
    site.store.move_labels(
        [LabelMove(n, "production", 1, None, "first") for n in ("facts", "say", "greet")],
        actor="t",
    )
    (site.store_root / "evals" / "say.yaml").write_text(
        "prompt: say\ncases:\n  - id: one\n    vars: {who: ann}\n"
        "    assert: [{type: contains, value: never said}]\n"
    )
    push(site.store, "say", {**say, "template": "Tell {{ facts }}"})
    push(site.store, "greet", greet("Hello dear {{ who }}"))
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "say", 2)
        promotion = wait_for_gate(site.store, pid)
        greet_pid = file_via_form(c, "greet", 2)
        greet_report = get_report(site.store, wait_for_gate(site.store, greet_pid).report_id)
        page = c.get(f"/promotions/{pid}").text
    report = get_report(site.store, promotion.report_id)
    [case] = report["suites"][0]["cases"]
    assert case["passed"] is False
    fed = {
        "input": "facts",
        "prompt": "facts",
        "version": "v1",
        "output": "[gpt-test] Facts of ann",
    }
    assert case["upstream"] == [fed]
    assert set(case) == CASE_KEYS | {"upstream"}  # one new optional key, the rest as before
    [base_case] = report["baseline_suites"][0]["cases"]
    assert base_case["upstream"] == [fed]
    # a case with no `from:` input has exactly the keys it always had
    [plain] = greet_report["suites"][0]["cases"]
    assert set(plain) == CASE_KEYS
    block = page.split('<details class="case fail" open>')[1].split('<details class="case')[0]
    assert "Tell [gpt-test] Facts of ann" in block
    shown = re.findall(r'<details class="upstream">(.*?)</details>', block, re.S)
    assert len(shown) == 2  # the candidate's and production's, each collapsed
    assert "Input <code>facts</code> was the output of <code>facts</code> v1" in shown[0]
    assert '<pre class="output">[gpt-test] Facts of ann</pre>' in shown[0]


def test_assertions_read_in_words() -> None:
    said = {
        "contains": ("1182", "must contain '1182'"),
        "not-contains": ("As an AI", "must not contain 'As an AI'"),
        "icontains-any": (["a", "b"], "must contain at least one of 'a', 'b' (any case)"),
        "word-count": ({"max": 60}, "must have at most 60 words"),
        "not-is-json": (None, "must not be valid JSON"),
        "llm-rubric": ("is polite", "must satisfy a judge model asked: 'is polite'"),
        "latency": (500, "must answer within 500 ms"),
    }
    for kind, (value, words) in said.items():
        assert assertion_words({"type": kind, "value": value}) == words


def test_a_missing_model_endpoint_is_one_banner_not_failed_cases(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    (site.store_root / "evals" / "greet.yaml").write_text(
        GREET_SUITE
        + "  - id: second\n    vars: {who: you}\n    assert: [{type: contains, value: you}]\n"
    )
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    push(site.store, "greet", greet("Hello dear {{ who }}"))
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "greet", 2)
        assert wait_for_gate(site.store, pid).state == "failed"
        page = c.get(f"/promotions/{pid}").text
    assert page.count('class="notice bad config-problem"') == 1
    assert "No model is configured on this server" in page and "Set OPENAI_API_KEY" in page
    assert "All 2 cases stopped with" in page
    assert '<details class="case' not in page  # no list of N failing cases


def test_a_refused_key_is_one_banner_too(site: Site, llm: OpenAITestServer) -> None:
    llm.fail(401, times=100)
    push(site.store, "greet", greet("Hello dear {{ who }}"))
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "greet", 2)
        assert wait_for_gate(site.store, pid).state == "failed"
        page = c.get(f"/promotions/{pid}").text
    assert "refused the server&#39;s API key" in page and '<details class="case' not in page


def test_gating_request_polls_with_htmx_and_falls_back_without_js(
    site: Site, llm: OpenAITestServer
) -> None:
    llm.latency = 1.0
    try:
        push(site.store, "greet", greet("Hello slow {{ who }}"))
        with site.signed_in("editor") as c:
            pid = file_via_form(c, "greet", 2)
            page = c.get(f"/promotions/{pid}").text
            assert f'hx-get="/promotions/{pid}/progress"' in page
            assert 'hx-trigger="every 1s"' in page
            assert '<noscript><meta http-equiv="refresh"' in page
            fragment = c.get(f"/promotions/{pid}/progress")
            assert "hx-refresh" not in fragment.headers and "<progress" in fragment.text
            wait_for_gate(site.store, pid)
    finally:
        llm.latency = 0.0


def test_request_form_errors_stay_in_the_form(site: Site) -> None:
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/promotions/new", params={"prompt": "greet"}))
        for data, error in (
            ({"label": "latest", "reason": "r"}, "latest"),
            ({"label": "v2", "reason": "r"}, "label"),
            ({"label": "production", "reason": " "}, "reason is required"),
        ):
            r = c.post(
                "/promotions", data={"csrf": token, "prompt": "greet", "version": "1", **data}
            )
            assert r.status_code == 422 and error in r.text and 'role="alert"' in r.text
    assert list_promotions(site.store) == []


def test_author_cannot_approve_their_own_request(site: Site) -> None:
    push(site.store, "greet", greet("Hello again {{ who }}"))
    with site.signed_in("approver") as author:
        pid = file_via_form(author, "greet", 2)
        assert wait_for_gate(site.store, pid).state == "passed"
        page = author.get(f"/promotions/{pid}")
        assert "you cannot approve it" in page.text
        assert f'action="/promotions/{pid}/approve"' not in page.text
        listing = author.get("/promotions").text
        assert "Waiting for an approver" in listing and "/approve" not in listing
        token = csrf_of(page)
        for verb in ("approve", "reject"):
            r = author.post(f"/promotions/{pid}/{verb}", data={"csrf": token})
            assert r.status_code == 403 and "author" in r.text
    assert get_promotion(site.store, pid).state == "passed"
    assert site.store.label_version("greet", "production") is None
    with site.signed_in("editor") as editor:  # an editor may not decide at all
        r = editor.post(f"/promotions/{pid}/approve", data={"csrf": csrf_of(editor.get("/"))})
        assert r.status_code == 403
    with site.signed_in("approver2") as other:
        page = other.get(f"/promotions/{pid}")
        assert f'action="/promotions/{pid}/approve"' in page.text
        r = other.post(
            f"/promotions/{pid}/approve", data={"csrf": csrf_of(page), "comment": "looks good"}
        )
        assert r.status_code == 303
        done = other.get(f"/promotions/{pid}").text
        assert "Approved" in done and "looks good" in done
        again = other.post(f"/promotions/{pid}/approve", data={"csrf": csrf_of(page)})
        assert again.status_code == 409
    assert site.store.label_version("greet", "production") == 2
    [move] = site.store.audit(prompt="greet", label="production", types=("move",))
    assert move.actor == "approver2" and move.details["requester"] == "approver"


def test_reject_moves_nothing(site: Site) -> None:
    push(site.store, "greet", greet("Yo {{ who }}"))
    with site.signed_in("editor") as author:
        pid = file_via_form(author, "greet", 2)
    wait_for_gate(site.store, pid)
    with site.signed_in("approver") as c:
        page = c.get("/promotions")
        r = c.post(f"/promotions/{pid}/reject", data={"csrf": csrf_of(page), "comment": "no"})
        assert r.status_code == 303
    assert get_promotion(site.store, pid).state == "rejected"
    assert site.store.label_version("greet", "production") is None


def test_approval_after_the_label_moved_shows_stale(site: Site) -> None:
    push(site.store, "greet", greet("Hey {{ who }}"))
    with site.signed_in("editor") as author:
        pid = file_via_form(author, "greet", 2)
    wait_for_gate(site.store, pid)
    site.store.move_labels([LabelMove("greet", "production", 1, None, "hotfix")], actor="someone")
    with site.signed_in("approver") as c:
        r = c.post(f"/promotions/{pid}/approve", data={"csrf": csrf_of(c.get("/"))})
        assert r.status_code == 409 and "stale" in r.text
        page = c.get(f"/promotions/{pid}").text
        assert 'class="badge stale"' in page and "moved after the gate judged" in page
    assert site.store.label_version("greet", "production") == 1


# -- escaping -------------------------------------------------------------------------------------


def test_prompt_text_is_always_escaped(site: Site) -> None:
    store = site.store
    content = {"model": {"name": "gpt-test"}, "template": SCRIPT, "description": f"desc {SCRIPT}"}
    push(store, "xss", content, message=f"msg {SCRIPT}")
    store.move_labels([LabelMove("xss", "production", 1, None, "base")], actor="setup")
    push(store, "xss", {**content, "template": SCRIPT + "\nmore"}, message="v2")
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "xss", 2, reason=f"reason {SCRIPT}")
        promotion = wait_for_gate(store, pid)
        assert promotion.state == "failed"
        pages = {
            "list": c.get("/"),
            "prompt": c.get("/prompts/xss?v=1"),
            "diff": c.get("/prompts/xss/diff?a=1&b=2"),
            "edit": c.get("/prompts/xss/edit"),
            "report": c.get(f"/promotions/{pid}"),
            "requests": c.get("/promotions"),
            "audit": c.get("/audit"),
        }
        for where, page in pages.items():
            assert page.status_code == 200, where
            assert "<script>alert" not in page.text, where
            assert ESCAPED in page.text, where
        report = pages["report"].text
        assert "FAIL" in report and "fails-and-shows-output" in report
        assert report.count("&lt;script&gt;") >= 3  # the diff, the output and the reason
        # an invalid edit echoes the text back escaped as well
        bad = c.post(
            "/prompts/xss/edit",
            data={
                "csrf": csrf_of(pages["edit"]),
                "message": "m",
                "yaml": f"name: xss\nmodel: [{SCRIPT}",
            },
        )
        assert bad.status_code == 422 and "<script>alert" not in bad.text


# -- workflow -------------------------------------------------------------------------------------


def test_the_list_has_no_one_click_decisions(site: Site) -> None:
    push(site.store, "greet", greet("Hi there {{ who }}"))
    with site.signed_in("editor") as author:
        pid = file_via_form(author, "greet", 2)
    assert wait_for_gate(site.store, pid).state == "passed"
    with site.signed_in("approver") as c:
        listing = c.get("/promotions").text
        assert "/approve" not in listing and "/reject" not in listing
        assert f'<a href="/promotions/{pid}">Review the report to decide</a>' in listing
        page = c.get(f"/promotions/{pid}").text
        assert f'action="/promotions/{pid}/approve"' in page and 'class="report"' in page


def test_an_approver_rolls_a_label_back_in_one_click(site: Site) -> None:
    push(site.store, "greet", greet("Hi {{ who }}"))
    site.store.move_labels([LabelMove("greet", "production", 1, None, "first")], actor="t")
    site.store.move_labels([LabelMove("greet", "production", 2, 1, "second")], actor="t")
    with site.signed_in("editor") as c:  # editors see the history, not the button
        assert "Roll back to" not in c.get("/prompts/greet").text
    with site.signed_in("approver") as c:
        page = c.get("/prompts/greet")
        assert 'action="/prompts/greet/labels/production/rollback"' in page.text
        assert (
            '<button class="danger small-button" name="to" value="1">Roll back to v1' in page.text
        )
        assert 'value="2">Roll back' not in page.text  # production is at v2 now
        token = csrf_of(page)
        url = "/prompts/greet/labels/production/rollback"
        r = c.post(url, data={"csrf": token, "to": "1", "reason": " "})
        assert r.status_code == 422 and "a reason is required" in r.text
        assert site.store.label_version("greet", "production") == 2
        r = c.post(url, data={"csrf": token, "to": "1", "reason": "v2 rambles"})
        assert r.status_code == 303 and r.headers["location"] == "/prompts/greet?rolled=production"
        done = c.get(r.headers["location"]).text
        assert "Rolled back: production now points at v1" in done
    assert site.store.label_version("greet", "production") == 1
    [event] = site.store.audit(prompt="greet", label="production", types=("move",), limit=1)
    assert event.details == {"rollback": True} and event.actor == "approver"
    assert (event.from_version, event.to_version, event.reason) == (2, 1, "v2 rambles")
    assert list_promotions(site.store) == []  # no request, no gate
    with site.signed_in("editor") as c:
        r = c.post(url, data={"csrf": csrf_of(c.get("/")), "to": "2", "reason": "x"})
        assert r.status_code == 403
    assert site.store.label_version("greet", "production") == 1


def test_the_request_label_is_chosen_from_existing_labels(site: Site) -> None:
    site.store.move_labels([LabelMove("greet", "staging", 1, None, "try")], actor="t")
    push(site.store, "greet", greet("Hi {{ who }}"))
    with site.signed_in("editor") as c:
        form = c.get("/promotions/new", params={"prompt": "greet"})
        assert '<select id="label" name="label"' in form.text
        options = re.findall(r'<option value="([a-z]+)"', form.text.split('id="label"')[1])
        assert options[:2] == ["production", "staging"]
        r = c.post(
            "/promotions",
            data={
                "csrf": csrf_of(form),
                "prompt": "greet",
                "version": "2",
                "label": "prodution",
                "reason": "typo",
            },
        )
        assert r.status_code == 422 and 'id="request-error"' in r.text
        assert "there is no label &#39;prodution&#39;: choose one of production, staging" in r.text
    assert list_promotions(site.store) == []


def test_a_requester_withdraws_their_request(site: Site) -> None:
    push(site.store, "greet", greet("Hi {{ who }}"))
    with site.signed_in("editor") as author:
        pid = file_via_form(author, "greet", 2)
        assert wait_for_gate(site.store, pid).state == "passed"
        page = author.get(f"/promotions/{pid}")
        assert f'action="/promotions/{pid}/withdraw"' in page.text
        token = csrf_of(page)
    with site.signed_in("approver") as other:  # not theirs to withdraw
        r = other.post(f"/promotions/{pid}/withdraw", data={"csrf": csrf_of(other.get("/"))})
        assert r.status_code == 403
        assert f"/promotions/{pid}/withdraw" not in other.get(f"/promotions/{pid}").text
    with site.signed_in("editor") as author:
        token = csrf_of(author.get(f"/promotions/{pid}"))
        r = author.post(f"/promotions/{pid}/withdraw", data={"csrf": token, "comment": "wrong"})
        assert r.status_code == 303
        page = author.get(f"/promotions/{pid}").text
        assert "Withdrawn by editor" in page and "wrong" in page and "/withdraw" not in page
        again = author.post(f"/promotions/{pid}/withdraw", data={"csrf": token})
        assert again.status_code == 409
    promotion = get_promotion(site.store, pid)
    assert promotion.state == "withdrawn" and promotion.decided_by == "editor"
    with site.signed_in("approver2") as other:  # nothing left to approve
        r = other.post(f"/promotions/{pid}/approve", data={"csrf": csrf_of(other.get("/"))})
        assert r.status_code == 409
    assert site.store.label_version("greet", "production") is None


def test_the_prompt_page_opens_on_production_and_edit_says_where_it_starts(site: Site) -> None:
    push(site.store, "greet", greet("Hi {{ who }}"))
    site.store.move_labels([LabelMove("greet", "production", 1, None, "first")], actor="t")
    with site.signed_in("editor") as c:
        page = c.get("/prompts/greet").text
        assert "<h2>v1 " in page and "Hello {{ who }}" in page
        assert "The latest version is" in page
        assert 'href="/prompts/greet/edit?v=1"' in page
        form = c.get("/prompts/greet/edit?v=1").text
        assert "Starting from <strong>v1</strong> (production)" in form
        assert "not the latest version (v2)" in form and "Hello {{ who }}" in form
        assert '<input type="hidden" name="base" value="1">' in form
        latest = c.get("/prompts/greet/edit").text
        assert "Starting from <strong>v2</strong> (latest)" in latest
        assert "<h2>v2 " in c.get("/prompts/greet?v=2").text


# -- the Try panel --------------------------------------------------------------------------------


def try_edit(c: httpx.Client, name: str, text: str, case: str = "0:hello") -> httpx.Response:
    token = csrf_of(c.get(f"/prompts/{name}/edit"))
    return c.post(
        f"/prompts/{name}/try",
        data={"csrf": token, "yaml": text, "message": "", "case": case, "base": "1"},
    )


def test_try_runs_the_unsaved_edit_beside_production_and_stores_nothing(
    site: Site, llm: OpenAITestServer
) -> None:
    site.store.move_labels([LabelMove("greet", "production", 1, None, "first")], actor="t")
    text = "name: greet\nmodel: {name: gpt-test}\ntemplate: 'Howdy {{ who }}'\n"
    with site.signed_in("editor") as c:
        assert '<option value="0:hello"' in c.get("/prompts/greet/edit").text
        r = try_edit(c, "greet", text)
        assert r.status_code == 200
        panel = r.text.split('id="try"')[1]
        assert "[gpt-test] Howdy world" in panel  # the draft
        assert "[gpt-test] Hello world" in panel and "Production (v1)" in panel
        assert "must contain &#39;world&#39;" in panel
        assert text.replace("'", "&#39;") in r.text  # the edit is kept in the form
        assert llm.call_count == 2
        again = try_edit(c, "greet", text)
        assert llm.call_count == 2 and again.text.count("From the cache.") == 2
    assert [v.version for v in site.store.history("greet")] == [1]
    assert [e.type for e in site.store.audit(prompt="greet")] == ["move", "push"]
    assert list_promotions(site.store) == []


def test_try_runs_through_the_chain_and_shows_the_upstream_output(site: Site) -> None:
    push(site.store, "facts", {"model": {"name": "gpt-test"}, "template": "Facts of {{ who }}"})
    downstream = {
        "model": {"name": "gpt-test"},
        "template": "Say {{ facts }}",
        "inputs": {"facts": {"from": "facts"}},
    }
    push(site.store, "say", downstream)
    (site.store_root / "evals" / "say.yaml").write_text(
        "prompt: say\ncases:\n  - id: one\n    vars: {who: ann}\n"
        "    assert: [{type: not-contains, value: As an AI}]\n"
    )
    text = (
        "name: say\nmodel: {name: gpt-test}\ntemplate: 'Tell {{ facts }}'\n"
        "inputs: {facts: {from: facts}}\n"
    )
    with site.signed_in("editor") as c:
        r = try_edit(c, "say", text, case="0:one")
    panel = r.text.split('id="try"')[1]
    assert "Input <code>facts</code> from <code>facts</code> v1" in panel
    assert "[gpt-test] Facts of ann" in panel  # what the upstream prompt produced
    assert "[gpt-test] Tell [gpt-test] Facts of ann" in panel
    assert "This prompt has no version at production yet" in panel
    assert "must not contain &#39;As an AI&#39;" in panel


def test_try_shows_errors_in_the_panel(site: Site) -> None:
    with site.signed_in("editor") as c:
        bad_var = "name: greet\nmodel: {name: gpt-test}\ntemplate: '{{ who.first.second }}'\n"
        r = try_edit(c, "greet", bad_var)
        assert r.status_code == 200 and "Could not try it" not in r.text
        assert "greet: template" in r.text.split('id="try"')[1]  # the render error, in place
        broken = "name: greet\nmodel: {name: gpt-test}\ntemplate: '{{ who | nosuch }}'\n"
        r = try_edit(c, "greet", broken)
        assert r.status_code == 200 and 'id="try-error"' in r.text
        assert "No filter named &#39;nosuch&#39;" in r.text
        r = try_edit(c, "greet", bad_var, case="7:nope")
        assert "choose a case of the suite" in r.text
    assert len(site.store.history("greet")) == 1


def test_a_failed_request_can_be_filed_again_after_an_edit(site: Site) -> None:
    site.store.move_labels([LabelMove("greet", "staging", 1, None, "try")], actor="t")
    push(site.store, "greet", greet("Bye"))  # fails: the case wants "world"
    with site.signed_in("editor") as c:
        pid = file_via_form(c, "greet", 2, label="staging")
        assert wait_for_gate(site.store, pid).state == "failed"
        page = c.get(f"/promotions/{pid}").text
        link = "/promotions/new?prompt=greet&amp;label=staging"
        assert f'href="{link}"' in page and "Request greet → staging again" in page
        push(site.store, "greet", greet("Bye {{ who }}"))
        form = c.get(link.replace("&amp;", "&")).text
        assert '<option value="staging" selected>' in form
        assert '<option value="3" selected>' in form  # the latest version, the edit
        again = file_via_form(c, "greet", 3, label="staging")
        assert wait_for_gate(site.store, again).state == "passed"


# -- the form editor ------------------------------------------------------------------------------


class _Fields(HTMLParser):
    """The fields a browser would post from the edit page's form (buttons left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._text: str | None = None
        self._select: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "edit" in a.get("class", ""):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and "name" in a and a.get("type") != "checkbox":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._text = a["name"]
            self.fields[self._text] = ""
        elif tag == "select":
            self._select = a["name"]
        elif (
            tag == "option"
            and self._select
            and ("selected" in a or self._select not in self.fields)
        ):
            self.fields[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._text is not None:
            # as a browser reads it: one newline right after <textarea> is not content
            self.fields[self._text] = self.fields[self._text].removeprefix("\n")
            self._text = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self.fields[self._text] += data


def fields_of(page: str) -> dict[str, str]:
    parser = _Fields()
    parser.feed(page)
    return parser.fields


RICH = {
    "description": "Answer with the house's tools.",
    "model": {"name": "gpt-test", "temperature": 0.3, "max_tokens": 120, "top_p": 0.9, "seed": 7},
    "messages": [
        {"role": "system", "content": "You are terse.", "name": "house"},
        {"role": "user", "content": "Answer {{ question }}\nfor {{ who }}"},
    ],
    "inputs": {"who": {"default": "you"}},
    "tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ],
    "response_format": {"type": "json_object"},
}


def test_the_edit_page_opens_as_a_form_with_one_box_per_message(site: Site) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        page = c.get("/prompts/rich/edit")
    assert page.status_code == 200
    fields = fields_of(page.text)
    assert fields["view"] == "form" and fields["f-count"] == "2"
    assert fields["f-role-0"] == "system" and fields["f-content-0"] == "You are terse."
    assert fields["f-content-1"] == "Answer {{ question }}\nfor {{ who }}"
    assert fields["f-role-1"] == "user"
    assert (fields["f-description"], fields["f-model"]) == (RICH["description"], "gpt-test")
    assert (fields["f-temperature"], fields["f-max-tokens"]) == ("0.3", "120")
    for field, label in (
        ("f-role-0", "Message 1 role"),
        ("f-content-1", "Message 2 text"),
        ("f-temperature", "Temperature"),
        ("f-max-tokens", "Max tokens"),
        ("f-model", "Model name"),
        ("f-description", "Description"),
    ):
        assert f'<label for="{field}">{label}</label>' in page.text
    assert '<option value="assistant">assistant</option>' in page.text
    assert 'value="yaml" formnovalidate>Edit as YAML</button>' in page.text
    assert "<code>tools</code>" in page.text.split("Kept as they are")[1]  # said, not shown
    assert 'id="yaml"' not in page.text  # the YAML view is one click away, not on the page


def test_saving_from_the_form_keeps_what_the_form_does_not_show(site: Site) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        fields.update(
            {
                "f-content-1": "Answer {{ question }} briefly\r\nfor {{ who }}",
                "f-role-0": "assistant",
                "f-temperature": "0",
                "f-description": "Brief answers.",
                "message": "briefer",
            }
        )
        r = c.post("/prompts/rich/edit", data=fields)
    assert r.status_code == 303, r.text
    v2 = site.store.get_version("rich", 2)
    expected = {
        **RICH,
        "description": "Brief answers.",
        "model": {**RICH["model"], "provider": "openai", "temperature": 0.0},
        "messages": [
            {"role": "assistant", "content": "You are terse.", "name": "house"},
            {"role": "user", "content": "Answer {{ question }} briefly\nfor {{ who }}"},
        ],
    }
    assert v2.content == expected
    assert v2.message == "briefer" and v2.author == "editor"


def test_an_unchanged_form_saves_nothing_new(site: Site) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        r = c.post("/prompts/rich/edit", data={**fields, "message": "no change"})
    assert r.status_code == 303 and r.headers["location"].endswith("saved=same")
    assert len(site.store.history("rich")) == 1


def test_an_unknown_filter_in_a_message_is_an_error_beside_that_message(site: Site) -> None:
    push(site.store, "rich", RICH)
    typed = "Answer {{ question | nosuchfilter }}"
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        r = c.post("/prompts/rich/edit", data={**fields, "f-content-1": typed, "message": "m"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in r.text and "Not saved" in r.text
    box = r.text.index('<textarea id="f-content-1"')
    error = r.text.index('id="err-content-1"')
    assert r.text.index('<label for="f-content-1">') < error < box  # beside its own box
    assert "No filter named &#39;nosuchfilter&#39;: check its spelling" in r.text[error:box]
    assert 'aria-invalid="true" aria-describedby="err-content-1"' in r.text[box : box + 200]
    kept = fields_of(r.text)
    assert kept["f-content-1"] == typed and kept["message"] == "m" and kept["view"] == "form"
    assert 'id="err-content-0"' not in r.text
    assert len(site.store.history("rich")) == 1


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        (
            {"f-temperature": "warm"},
            "temperature",
            "must be a number, such as 0.2, not &#39;warm&#39;",
        ),
        ({"f-max-tokens": "1.5"}, "max-tokens", "must be a whole number"),
        ({"f-model": ""}, "model", "`name` is required"),
        ({"f-role-0": "boss"}, "role-0", "must be one of"),
    ],
)
def test_form_errors_sit_beside_their_field(
    site: Site, changes: dict[str, str], field: str, words: str
) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        r = c.post("/prompts/rich/edit", data={**fields, **changes, "message": "m"})
    assert r.status_code == 422
    shown = r.text.split(f'id="err-{field}">')[1].split("</p>")[0]
    assert words in shown
    kept = {k: v for k, v in fields_of(r.text).items() if k != "yaml"}  # what was typed, kept
    assert kept == {k: v for k, v in {**fields, **changes, "message": "m"}.items() if k != "yaml"}
    assert len(site.store.history("rich")) == 1


def test_switching_views_keeps_the_edit_both_ways(site: Site) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        edited = {**fields, "f-content-0": "You are kind.", "message": "kinder"}
        r = c.post("/prompts/rich/edit", data={**edited, "form-action": "yaml"})
        assert r.status_code == 200 and '<textarea id="yaml"' in r.text
        as_yaml = fields_of(r.text)
        assert "content: You are kind." in as_yaml["yaml"] and "top_p: 0.9" in as_yaml["yaml"]
        assert as_yaml["message"] == "kinder" and "view" not in as_yaml
        assert len(site.store.history("rich")) == 1  # switching saves nothing
        # an edit in the YAML view, back to the form: the fields show it
        changed = as_yaml["yaml"].replace("max_tokens: 120", "max_tokens: 99")
        r = c.post("/prompts/rich/edit", data={**as_yaml, "yaml": changed, "form-action": "form"})
        back = fields_of(r.text)
        assert back["f-max-tokens"] == "99" and back["f-content-0"] == "You are kind."
        # both views save the same prompt
        r = c.post("/prompts/rich/edit", data={**back, "message": "kinder"})
        assert r.status_code == 303
        r = c.post("/prompts/rich/edit", data={**as_yaml, "yaml": changed, "message": "again"})
        assert r.headers["location"].endswith("saved=same")
    assert site.store.get_version("rich", 2).content["model"]["max_tokens"] == 99


def test_broken_yaml_stays_in_the_yaml_view(site: Site) -> None:
    laughs = "name: greet\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with site.signed_in("editor") as c:
        token = csrf_of(c.get("/prompts/greet/edit"))
        # a billion laughs is refused by the prompt file's bounds, not expanded
        r = c.post(
            "/prompts/greet/edit", data={"csrf": token, "yaml": laughs, "form-action": "form"}
        )
        assert r.status_code == 422 and "alias" in r.text.split('id="form-error"')[1][:600]
        token = csrf_of(c.get("/prompts/greet/edit"))
        data = {"csrf": token, "yaml": "name: greet\nmodel: [unclosed\n", "form-action": "form"}
        r = c.post("/prompts/greet/edit", data=data)
    assert r.status_code == 422 and "Line 3 of the prompt file: invalid YAML" in r.text
    assert fields_of(r.text)["yaml"] == "name: greet\nmodel: [unclosed\n"


def test_adding_and_removing_messages(site: Site) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        r = c.post("/prompts/rich/edit", data={**fields, "form-action": "add"})
        added = fields_of(r.text)
        assert (
            added["f-count"] == "3" and added["f-content-2"] == "" and added["f-role-2"] == "user"
        )
        assert '<label for="f-content-2">Message 3 text</label>' in r.text
        r = c.post("/prompts/rich/edit", data={**added, "form-action": "remove-0"})
        removed = fields_of(r.text)
        assert removed["f-count"] == "2" and removed["f-content-0"].startswith("Answer")
        removed["f-content-1"] = "Thanks."
        r = c.post("/prompts/rich/edit", data={**removed, "message": "no system"})
        assert r.status_code == 303
    messages = site.store.get_version("rich", 2).content["messages"]
    # the removed message took its extra key with it; the others keep theirs
    assert messages == [RICH["messages"][1], {"role": "user", "content": "Thanks."}]


def test_a_template_prompt_has_one_text_box(site: Site) -> None:
    with site.signed_in("editor") as c:
        page = c.get("/prompts/greet/edit").text
        fields = fields_of(page)
        assert fields["f-template"] == "Hello {{ who }}" and "f-count" not in fields
        assert '<label for="f-template">Prompt text</label>' in page
        fields.update({"f-template": "Hi {{ who }}", "message": "shorter"})
        assert c.post("/prompts/greet/edit", data=fields).status_code == 303
    assert site.store.get_version("greet", 2).content == greet("Hi {{ who }}") | {
        "model": {"name": "gpt-test", "provider": "openai"}
    }


def test_a_new_prompt_from_the_form(site: Site) -> None:
    with site.signed_in("editor") as c:
        page = c.get("/new").text
        fields = fields_of(page)
        assert '<label for="f-name">Name</label>' in page and fields["view"] == "form"
        fields.update({"f-name": "Bad Name", "message": "first"})
        r = c.post("/new", data=fields)
        assert r.status_code == 422 and 'id="err-name"' in r.text
        fields["f-name"] = "fresh"
        r = c.post("/new", data=fields)
        assert r.status_code == 303 and r.headers["location"].startswith("/prompts/fresh?v=1")
    assert (
        site.store.get_version("fresh", 1).content["messages"][1]["content"] == "{{ question }}\n"
    )


def test_the_yaml_view_is_one_click_or_one_link_away(site: Site) -> None:
    with site.signed_in("editor") as c:
        page = c.get("/prompts/greet/edit?view=yaml").text
    assert '<textarea id="yaml" name="yaml"' in page and 'name="view"' not in page
    assert 'value="form" formnovalidate>Edit as a form</button>' in page


# -- the Try panel on typed inputs ----------------------------------------------------------------


def try_typed(
    c: httpx.Client, name: str, text: str, values: dict[str, str]
) -> tuple[httpx.Response, str]:
    page = c.get(f"/prompts/{name}/edit?view=yaml")
    r = c.post(
        f"/prompts/{name}/try",
        data={
            "csrf": csrf_of(page),
            "yaml": text,
            "message": "",
            "base": "1",
            "try-with": "inputs",
            **{f"in-{k}": v for k, v in values.items()},
        },
    )
    return r, r.text.split('id="try"')[1]


def test_try_on_typed_inputs_beside_production_stores_nothing(
    site: Site, llm: OpenAITestServer
) -> None:
    site.store.move_labels([LabelMove("greet", "production", 1, None, "first")], actor="t")
    text = "name: greet\nmodel: {name: gpt-test}\ntemplate: 'Howdy {{ who }}'\n"
    with site.signed_in("editor") as c:
        page = c.get("/prompts/greet/edit").text
        assert '<label for="in-who"><code>who</code></label>' in page
        assert "Try on these inputs" in page
        r, panel = try_typed(c, "greet", text, {"who": "Ann Lee"})
        assert r.status_code == 200
        assert "On the inputs you typed" in panel
        assert "[gpt-test] Howdy Ann Lee" in panel  # the draft
        assert "[gpt-test] Hello Ann Lee" in panel and "Production (v1)" in panel
        assert fields_of(r.text)["in-who"] == "Ann Lee"  # the value stays in its field
        assert llm.call_count == 2
        again, panel = try_typed(c, "greet", text, {"who": "Ann Lee"})
        assert llm.call_count == 2 and panel.count("From the cache.") == 2
    assert [v.version for v in site.store.history("greet")] == [1]
    assert list_promotions(site.store) == []


def test_typed_inputs_feed_the_chain_or_replace_its_upstream(
    site: Site, llm: OpenAITestServer
) -> None:
    push(site.store, "facts", {"model": {"name": "gpt-test"}, "template": "Facts of {{ who }}"})
    push(
        site.store,
        "say",
        {
            "model": {"name": "gpt-test"},
            "template": "Say {{ facts }} {{ tone }}",
            "inputs": {"facts": {"from": "facts"}, "tone": {"default": "gently"}},
        },
    )
    text = (
        "name: say\nmodel: {name: gpt-test}\ntemplate: 'Tell {{ facts }} {{ tone }}'\n"
        "inputs: {facts: {from: facts}, tone: {default: gently}}\n"
    )
    with site.signed_in("editor") as c:
        page = c.get("/prompts/say/edit").text
        # the prompt's inputs, and the upstream prompt's, each with what leaving it empty does
        assert "Leave empty to produce it by running <code>facts</code>" in page
        assert "Leave empty for the default: gently" in page
        assert '<code>who</code> <span class="muted small">(used by facts)</span>' in page
        # left empty: facts runs upstream on the typed `who`, the default fills `tone`
        r, panel = try_typed(c, "say", text, {"facts": "", "tone": "", "who": "ann"})
        assert "Input <code>facts</code> from <code>facts</code> v1" in panel
        assert "[gpt-test] Tell [gpt-test] Facts of ann gently" in panel
        assert "This prompt has no version at production yet" in panel
        # typed: used as it is, and the upstream prompt does not run
        llm.reset()
        r, panel = try_typed(c, "say", text, {"facts": "a broken kettle", "tone": "", "who": ""})
        assert "[gpt-test] Tell a broken kettle gently" in panel
        assert "Input <code>facts</code>" not in panel
        sent = [str(q.body) for q in llm.requests]
        assert len(sent) == 1 and "Facts of" not in sent[0]
    assert [v.version for v in site.store.history("say")] == [1]


def test_try_on_typed_inputs_from_the_form_view(site: Site) -> None:
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/greet/edit").text)
        fields.update({"f-template": "Hey {{ who }}", "try-with": "inputs", "in-who": "bo"})
        r = c.post("/prompts/greet/try", data=fields)
    assert r.status_code == 200
    assert "[gpt-test] Hey bo" in r.text.split('id="try"')[1]
    kept = fields_of(r.text)
    assert kept["view"] == "form" and kept["f-template"] == "Hey {{ who }}"
    assert len(site.store.history("greet")) == 1


def test_a_variable_nothing_provides_is_a_warning_in_the_form_view_too(site: Site) -> None:
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/greet/edit").text)
        fields.update({"f-template": "Hello {{ who }}, {{ tier }}", "message": "tiers"})
        r = c.post("/prompts/greet/edit", data=fields)
        assert r.status_code == 200 and 'id="form-warning"' in r.text and "Save anyway" in r.text
        again = fields_of(r.text)
        assert again["confirm"] == "tier" and again["f-template"] == "Hello {{ who }}, {{ tier }}"
        assert len(site.store.history("greet")) == 1
        r = c.post("/prompts/greet/edit", data=again)
        assert r.status_code == 303
    assert site.store.get_version("greet", 2).content["template"] == "Hello {{ who }}, {{ tier }}"


def test_a_partial_saves_from_the_form_and_a_whole_temperature_stays_whole(site: Site) -> None:
    push(site.store, "tone", {"partial": True, "template": "Be warm."})
    push(site.store, "steady", {"model": {"name": "gpt-test", "temperature": 1}, "template": "Hi"})
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/tone/edit").text)
        r = c.post("/prompts/tone/edit", data={**fields, "message": "same"})
        assert r.status_code == 303 and r.headers["location"].endswith("saved=same")
        edited = {**fields, "f-template": "Be warm and brief.", "message": "briefer"}
        r = c.post("/prompts/tone/edit", data=edited)
        assert r.status_code == 303 and r.headers["location"].endswith("saved=new"), r.text[:300]
        # the form shows temperature 1 as "1"; saving it unchanged is not a new version (1.0)
        fields = fields_of(c.get("/prompts/steady/edit").text)
        assert fields["f-temperature"] == "1"
        r = c.post("/prompts/steady/edit", data={**fields, "message": "same"})
        assert r.status_code == 303 and r.headers["location"].endswith("saved=same")
    assert site.store.resolve("tone").content == {"partial": True, "template": "Be warm and brief."}
    assert site.store.resolve("steady").version == 1


@pytest.mark.parametrize("field", ["f-count", "base", "form-action"])
def test_digits_that_are_not_numbers_are_no_server_error(site: Site, field: str) -> None:
    push(site.store, "rich", RICH)
    with site.signed_in("editor") as c:
        fields = fields_of(c.get("/prompts/rich/edit").text)
        value = "remove-\u00b2" if field == "form-action" else "\u00b2"  # "²".isdigit() is True
        r = c.post("/prompts/rich/edit", data={**fields, field: value, "message": "m"})
    assert r.status_code < 500, r.text[:300]
    assert r.status_code == 303 or r.headers["content-type"].startswith("text/html")
