"""The registry server's API contract, through the real app over HTTP, on both engines."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from promptgate.config import Config, GateConfig
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import Store, create_key, get_promotion, get_report
from promptgate.testing import OpenAITestServer

CONTENT = {"model": {"name": "m"}, "template": "Hello {{ who }}"}
SUITE = """\
prompt: greet
cases:
  - id: hello
    vars: {who: world}
    assert: [{type: contains, value: world}]
"""


@dataclass
class Api:
    url: str
    keys: dict[str, str]
    server: ServerThread
    root: Path

    def client(self, who: str = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def api(
    registry_url: str, tmp_path: Path, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    llm.reset()
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "greet.yaml").write_text(SUITE)
    config = Config(root=tmp_path, gate=GateConfig(concurrency=4, retries=0, backoff_s=0.01))
    app = create_app(ServerSettings(registry=registry_url, config=config))
    store = app.state.pg.store
    keys = {
        role: create_key(store, role, role) for role in ("viewer", "editor", "approver", "admin")
    }
    keys["editor2"] = create_key(store, "editor2", "editor")
    keys["approver2"] = create_key(store, "approver2", "approver")
    with ServerThread(app) as server:
        yield Api(url=server.url, keys=keys, server=server, root=tmp_path)


def push(c: httpx.Client, name: str = "greet", text: str = "Hello {{ who }}") -> httpx.Response:
    return c.post(
        f"/v1/prompts/{name}/versions",
        json={"content": {"model": {"name": "m"}, "template": text}, "message": "m"},
    )


def test_push_is_idempotent_on_content(api: Api) -> None:
    with api.client("editor") as c:
        first = push(c)
        assert first.status_code == 201 and first.json()["version"] == 1
        again = push(c)
        assert again.status_code == 200 and again.json()["version"] == 1
        second = push(c, text="Hi {{ who }}")
        assert second.status_code == 201 and second.json()["version"] == 2
        assert second.json()["author"] == "editor"
        assert set(second.json()) == {
            "name",
            "version",
            "content_hash",
            "labels",
            "message",
            "author",
            "created_at",
            "content",
        }
        versions = c.get("/v1/prompts/greet/versions").json()
        assert [v["version"] for v in versions] == [1, 2]
        assert [p["name"] for p in c.get("/v1/prompts").json()] == ["greet"]


def test_bad_content_is_422_and_stores_nothing(api: Api) -> None:
    with api.client("editor") as c:
        bad = c.post(
            "/v1/prompts/greet/versions",
            json={"content": {"model": {"name": "m"}, "template": "{{ x "}, "message": "m"},
        )
        assert bad.status_code == 422 and set(bad.json()) == {"error", "detail"}
        other = c.post(
            "/v1/prompts/greet/versions",
            json={"content": {**CONTENT, "name": "other"}, "message": "m"},
        )
        assert other.status_code == 422
        assert c.get("/v1/prompts").json() == []
        assert c.get("/v1/prompts/greet").status_code == 404


def test_etag_and_304(api: Api) -> None:
    with api.client("editor") as c:
        push(c)
        c.put("/v1/prompts/greet/labels/staging", json={"version": 1})
        r = c.get("/v1/prompts/greet", params={"label": "staging"})
        tag = r.headers["etag"]
        same = c.get(
            "/v1/prompts/greet", params={"label": "staging"}, headers={"If-None-Match": tag}
        )
        assert same.status_code == 304 and same.content == b""
        push(c, text="v2 {{ who }}")
        c.put("/v1/prompts/greet/labels/staging", json={"version": 2})
        moved = c.get(
            "/v1/prompts/greet", params={"label": "staging"}, headers={"If-None-Match": tag}
        )
        assert moved.status_code == 200 and moved.json()["version"] == 2
        assert c.get("/v1/prompts/greet", params={"version": 1}).json()["version"] == 1


def test_label_cas_with_if_match(api: Api) -> None:
    with api.client("editor") as c:
        push(c)
        push(c, text="two {{ who }}")
        ok = c.put(
            "/v1/prompts/greet/labels/beta",
            json={"version": 1, "reason": "r"},
            headers={"If-Match": '"none"'},
        )
        assert ok.status_code == 200
        body = ok.json()
        seq = body.pop("seq")  # the move's event seq, for reads with ?min_seq=
        assert body == {"prompt": "greet", "label": "beta", "version": 1, "revision": 1}
        assert seq == c.get("/v1/audit", params={"limit": 1}).json()["events"][0]["seq"]
        stale = c.put(
            "/v1/prompts/greet/labels/beta", json={"version": 2}, headers={"If-Match": '"2"'}
        )
        assert stale.status_code == 412
        moved = c.put(
            "/v1/prompts/greet/labels/beta", json={"version": 2}, headers={"If-Match": '"1"'}
        )
        assert moved.json()["revision"] == 2
        assert c.put("/v1/prompts/greet/labels/production", json={"version": 2}).status_code == 403
        gone = c.request("DELETE", "/v1/prompts/greet/labels/beta", json={"reason": "done"})
        assert gone.status_code == 200 and gone.json()["type"] == "remove"
        assert c.get("/v1/prompts/greet", params={"label": "beta"}).status_code == 404


def test_auth_and_roles(api: Api) -> None:
    assert httpx.get(api.url + "/v1/prompts").status_code == 401
    bad = httpx.get(api.url + "/v1/prompts", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    with api.client("viewer") as c:
        assert c.get("/v1/prompts").status_code == 200
        assert push(c).status_code == 403
    with api.client("editor") as c:
        push(c)
        assert (
            c.post("/v1/prompts/greet/labels/staging/rollback", json={"reason": "x"}).status_code
            == 403
        )
        assert c.get("/v1/keys").status_code == 403
    with api.client("admin") as c:
        made = c.post("/v1/keys", json={"name": "temp", "role": "viewer"})
        assert made.status_code == 201 and len(made.json()["key"]) >= 32
        temp = made.json()["key"]
        assert (
            httpx.get(
                api.url + "/v1/prompts", headers={"Authorization": f"Bearer {temp}"}
            ).status_code
            == 200
        )
        assert c.delete("/v1/keys/temp").status_code == 200
        assert (
            httpx.get(
                api.url + "/v1/prompts", headers={"Authorization": f"Bearer {temp}"}
            ).status_code
            == 401
        )
        assert {k["name"] for k in c.get("/v1/keys").json()} >= {"admin", "temp"}
    assert httpx.get(api.url + "/openapi.json").status_code == 200


def test_audit_pagination(api: Api) -> None:
    with api.client("editor") as c:
        for i in range(5):
            push(c, text=f"v{i} {{{{ who }}}}")
        page = c.get("/v1/audit", params={"limit": 2}).json()
        assert [e["seq"] for e in page["events"]] == [5, 4] and page["next"] == 4
        rest = c.get("/v1/audit", params={"limit": 10, "before": page["next"]}).json()
        assert [e["seq"] for e in rest["events"]] == [3, 2, 1] and rest["next"] is None
        assert c.get("/v1/audit", params={"prompt": "nobody"}).json()["events"] == []


def test_events_long_poll_wakes_on_a_write(api: Api) -> None:
    import threading

    with api.client("editor") as c:
        push(c)
        seq = c.get("/v1/events", params={"since": 0, "timeout": 0}).json()["events"][-1]["seq"]
        result: dict[str, object] = {}

        def poll() -> None:
            started = time.monotonic()
            with api.client("viewer") as v:
                result["events"] = v.get("/v1/events", params={"since": seq, "timeout": 10}).json()
            result["waited"] = time.monotonic() - started

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.3)
        c.put("/v1/prompts/greet/labels/staging", json={"version": 1})
        t.join(timeout=15)
        events = result["events"]["events"]  # type: ignore[index]
        assert [e["type"] for e in events] == ["move"] and events[0]["label"] == "staging"
        assert set(events[0]) >= {
            "seq",
            "type",
            "prompt",
            "version",
            "label",
            "from",
            "to",
            "actor",
            "at",
        }
        assert 0.2 < result["waited"] < 5  # type: ignore[operator]


def test_snapshot(api: Api) -> None:
    with api.client("editor") as c:
        push(c)
        push(c, name="other")
        c.put("/v1/prompts/greet/labels/staging", json={"version": 1})
        snap = c.get("/v1/snapshot", params={"label": "staging", "names": "greet"}).json()
        assert snap["label"] == "staging" and snap["seq"] == 3
        assert list(snap["prompts"]) == ["greet"]
        assert (
            c.get("/v1/snapshot", params={"label": "staging", "names": "greet,other"}).status_code
            == 404
        )


def _wait_state(c: httpx.Client, pid: int, states: set[str]) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    while True:
        request = c.get(f"/v1/promotions/{pid}").json()
        if request["state"] in states:
            return request
        assert time.monotonic() < deadline, request
        time.sleep(0.05)


def _file(c: httpx.Client) -> int:
    return int(
        c.post(
            "/v1/promotions", json={"refs": ["greet"], "label": "production", "reason": "launch"}
        ).json()["id"]
    )


def _wait_in_flight(llm: OpenAITestServer, c: httpx.Client, pid: int) -> None:
    deadline = time.monotonic() + 10
    while llm.in_flight == 0:
        assert time.monotonic() < deadline, c.get(f"/v1/promotions/{pid}").json()
        time.sleep(0.01)


def _failed_as_stopped(store: Store, pid: int) -> bool:
    request = get_promotion(store, pid)
    report = get_report(store, request.report_id) if request.report_id else None
    return (
        request.state == "failed"
        and report is not None
        and report["failures"] == ["the server stopped before the gate finished"]
    )


def test_stopping_mid_gate_fails_the_requests(
    api: Api, llm: OpenAITestServer, registry_url: str
) -> None:
    """A server that stops while gates run or wait fails their requests (closed), never leaves
    one `gating` for a `promote --wait` to poll forever."""
    llm.slow(3.0)
    with api.client("editor") as editor:
        push(editor)
        running = _file(editor)
        queued = _file(editor)  # one gate worker: this one waits in the pool's queue
        _wait_in_flight(llm, editor, running)
    api.server.stop()
    store = Store(registry_url)
    try:
        assert _failed_as_stopped(store, running)
        assert _failed_as_stopped(store, queued)
    finally:
        store.close()


def test_gate_that_sees_the_stop_fails_its_own_request(api: Api, llm: OpenAITestServer) -> None:
    """A case finishing once the stop has begun ends the gate, which fails its request itself
    (it has left the table abandon_gates reads)."""
    llm.slow(1.0)
    state = api.server.config.app.state.pg
    with api.client("editor") as editor:
        push(editor)
        pid = _file(editor)
        _wait_in_flight(llm, editor, pid)
        state.stopping = True
        deadline = time.monotonic() + 10
        while pid in state.gates:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert _failed_as_stopped(state.store, pid)


def test_request_after_the_store_closed_is_503_not_500(api: Api) -> None:
    """A request still being served while the server stops gets a clear 503."""
    api.server.config.app.state.pg.store.close()
    with api.client("viewer") as c:
        response = c.get("/v1/audit")
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"


def test_promotion_request_gate_and_approval(api: Api) -> None:
    with api.client("editor") as editor, api.client("approver") as approver:
        push(editor)
        filed = editor.post(
            "/v1/promotions", json={"refs": ["greet"], "label": "production", "reason": "launch"}
        )
        assert filed.status_code == 201 and filed.json()["state"] == "gating"
        pid = filed.json()["id"]
        done = _wait_state(editor, pid, {"passed", "failed"})
        assert done["state"] == "passed" and done["progress"]["done"] == 1
        report = editor.get(f"/v1/promotions/{pid}/report").json()
        assert report["verdict"] == "pass"
        assert editor.post(f"/v1/promotions/{pid}/approve").status_code == 403  # role
        approved = approver.post(f"/v1/promotions/{pid}/approve", json={"comment": "ok"})
        assert approved.status_code == 200 and approved.json()["state"] == "approved"
        assert approved.json()["decided_by"] == "approver"
        assert (
            editor.get("/v1/prompts/greet", params={"label": "production"}).json()["version"] == 1
        )
        trail = editor.get("/v1/audit", params={"prompt": "greet"}).json()["events"]
        assert [e["type"] for e in trail] == ["decision", "move", "request", "push"]
        move = trail[1]
        assert move["details"]["request"] == pid and move["details"]["requester"] == "editor"
        assert move["details"]["approver"] == "approver" and move["reason"] == "launch"
        # a second request runs the baseline too, and its report compares with it
        push(editor, text="Hi {{ who }}")
        pid = editor.post(
            "/v1/promotions", json={"refs": ["greet@v2"], "label": "production", "reason": "r"}
        ).json()["id"]
        _wait_state(editor, pid, {"passed", "failed"})
        report = editor.get(f"/v1/promotions/{pid}/report").json()
        assert [s["version"] for s in report["baseline_suites"]] == ["v1"]
        comparison = report["suites"][0]["comparison"]
        assert comparison["n"] == 1 and comparison["verdict"] == "inconclusive"
        assert report["verdict"] == "inconclusive"


def test_self_approval_failed_gate_and_stale(api: Api, llm: OpenAITestServer) -> None:
    with (
        api.client("approver") as author,
        api.client("approver2") as other,
        api.client("editor") as editor,
    ):
        push(editor)
        pid = author.post(
            "/v1/promotions", json={"refs": ["greet@v1"], "label": "production", "reason": "r"}
        ).json()["id"]
        _wait_state(author, pid, {"passed"})
        assert author.post(f"/v1/promotions/{pid}/approve").status_code == 403
        # another request for the same label is approved first: this one goes stale
        pid2 = editor.post(
            "/v1/promotions", json={"refs": ["greet@v1"], "label": "production", "reason": "r2"}
        ).json()["id"]
        _wait_state(editor, pid2, {"passed"})
        assert other.post(f"/v1/promotions/{pid2}/approve").status_code == 200
        stale = other.post(f"/v1/promotions/{pid}/approve")
        assert stale.status_code == 409
        assert author.get(f"/v1/promotions/{pid}").json()["state"] == "stale"
        assert other.post(f"/v1/promotions/{pid}/reject").status_code == 409
        # a failing gate: approval is refused
        llm.fail(500, times=10)
        push(editor, text="Goodbye {{ who }}")
        pid3 = editor.post(
            "/v1/promotions", json={"refs": ["greet"], "label": "production", "reason": "r3"}
        ).json()["id"]
        assert _wait_state(editor, pid3, {"passed", "failed"})["state"] == "failed"
        assert other.post(f"/v1/promotions/{pid3}/approve").status_code == 409
        assert (
            editor.get("/v1/prompts/greet", params={"label": "production"}).json()["version"] == 1
        )


def test_ci_report_upload_must_match(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from promptgate.cli import cli

    (api.root / "promptgate.yaml").write_text("evals: evals/\n")
    monkeypatch.chdir(api.root)

    with api.client("editor") as editor:
        push(editor)
        pid = editor.post(
            "/v1/promotions",
            json={"refs": ["greet"], "label": "production", "reason": "ci", "run_gate": False},
        ).json()["id"]
        # a CI job's report for this exact request, produced by `promptgate check`
        store_url = api.server.server.config.app.state.pg.settings.registry
        out = api.root / "report.json"
        result = CliRunner().invoke(
            cli,
            ["--registry", store_url, "check", "greet@v1", "--report-json", str(out)],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        report = json.loads(out.read_text())
        tampered = json.loads(json.dumps(report))
        tampered["candidates"][0]["content_hash"] = "0" * 64
        assert editor.post(f"/v1/promotions/{pid}/report", json=tampered).status_code == 409
        tampered = json.loads(json.dumps(report))
        tampered["suites"][0]["digest"] = "f" * 64
        assert editor.post(f"/v1/promotions/{pid}/report", json=tampered).status_code == 409
        accepted = editor.post(f"/v1/promotions/{pid}/report", json=report)
        assert accepted.status_code == 200 and accepted.json()["state"] == "passed"


def test_errors_are_json_never_tracebacks(api: Api) -> None:
    with api.client("editor") as c:
        for response in (
            c.get("/v1/prompts/NOPE!"),
            c.get("/v1/promotions/999"),
            c.post("/v1/promotions", json={"refs": []}),
            c.put("/v1/prompts/x/labels/v2", json={"version": 1}),
            c.get("/v1/events", params={"since": -1}),
        ):
            assert 400 <= response.status_code < 500
            body = response.json()
            assert set(body) == {"error", "detail"} and "Traceback" not in body["detail"]


def _ci_report(api: Api, ref: str) -> dict[str, object]:
    """A CI job's genuine JSON report for `ref`, made by `promptgate check` on the store."""
    from click.testing import CliRunner

    from promptgate.cli import cli

    store_url = api.server.server.config.app.state.pg.settings.registry
    out = api.root / "report.json"
    CliRunner().invoke(
        cli,
        ["--registry", store_url, "check", ref, "--report-json", str(out)],
        catch_exceptions=False,
    )
    report: dict[str, object] = json.loads(out.read_text())
    return report


def _file_for_ci(c: httpx.Client, ref: str) -> int:
    return int(
        c.post(
            "/v1/promotions",
            json={"refs": [ref], "label": "production", "reason": "ci", "run_gate": False},
        ).json()["id"]
    )


def test_a_failing_report_cannot_be_forged_into_a_pass(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    (api.root / "promptgate.yaml").write_text("evals: evals/\n")
    monkeypatch.chdir(api.root)
    store = api.server.server.config.app.state.pg.store
    with api.client("editor") as editor:
        push(editor, text="Bye {{ who | upper }}")  # echoes WORLD: `contains world` fails
        pid = _file_for_ci(editor, "greet@v1")
        report = _ci_report(api, "greet@v1")
        assert report["verdict"] == "fail"
        forged = json.loads(json.dumps(report))
        forged["verdict"] = "pass"
        refused = editor.post(f"/v1/promotions/{pid}/report", json=forged)
        assert refused.status_code == 409 and "verdict" in refused.json()["detail"]
        # flipping every flag as well does not help: the verdict is derived from the runs
        forged["suites"][0]["passed"] = True
        forged["suites"][0]["cases"][0]["passed"] = True
        refused = editor.post(f"/v1/promotions/{pid}/report", json=forged)
        assert refused.status_code == 409 and "runs passed" in refused.json()["detail"]
        assert get_promotion(store, pid).state == "gating"
        events = [
            e for e in store.audit(prompt="greet") if e.details.get("decision") == "report-refused"
        ]
        assert len(events) == 2 and events[0].actor == "editor"
        # the genuine failing report is taken, and fails the request
        taken = editor.post(f"/v1/promotions/{pid}/report", json=report)
        assert taken.status_code == 200 and taken.json()["state"] == "failed"


def test_a_report_must_hold_every_affected_suite(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptgate.domain import LabelMove

    (api.root / "promptgate.yaml").write_text("evals: evals/\n")
    (api.root / "evals" / "b.yaml").write_text(
        "prompt: b\ncases:\n  - id: says\n    vars: {who: world}\n"
        "    assert: [{type: contains, value: world}]\n"
    )
    monkeypatch.chdir(api.root)
    store = api.server.server.config.app.state.pg.store
    with api.client("editor") as editor:
        push(editor)
        content = {
            "model": {"name": "m"},
            "template": "Say {{ g }}",
            "inputs": {"g": {"from": "greet"}},
        }
        assert editor.post(
            "/v1/prompts/b/versions", json={"content": content, "message": "m"}
        ).status_code in (200, 201)
        store.move_labels(
            [LabelMove("greet", "production", 1, None), LabelMove("b", "production", 1, None)],
            actor="ops",
        )
        push(editor, text="Hello, {{ who }}")
        pid = _file_for_ci(editor, "greet@v2")
        report = _ci_report(api, "greet@v2")
        assert {s["prompt"] for s in report["suites"]} == {"greet", "b"}
        partial = json.loads(json.dumps(report))
        partial["suites"] = [s for s in partial["suites"] if s["prompt"] == "greet"]
        refused = editor.post(f"/v1/promotions/{pid}/report", json=partial)
        assert refused.status_code == 409 and "leaves out" in refused.json()["detail"]
        doubled = json.loads(json.dumps(report))
        doubled["suites"].append(doubled["suites"][0])
        assert editor.post(f"/v1/promotions/{pid}/report", json=doubled).status_code == 409
        # the baseline's runs are part of the evidence: without them no comparison is possible
        assert {s["prompt"] for s in report["baseline_suites"]} == {"greet", "b"}
        blind = json.loads(json.dumps(report))
        blind["baseline_suites"] = []
        refused = editor.post(f"/v1/promotions/{pid}/report", json=blind)
        assert refused.status_code == 409
        assert "leaves out the baseline's runs" in refused.json()["detail"]
        # a baseline that is not the label's version is refused too
        other = json.loads(json.dumps(report))
        other["baseline_suites"][0]["version"] = "v2"
        refused = editor.post(f"/v1/promotions/{pid}/report", json=other)
        assert refused.status_code == 409 and "not greet@v1" in refused.json()["detail"]
        # and a suite verdict that its cases do not give
        claimed = json.loads(json.dumps(report))
        claimed["suites"][0]["verdict"] = "pass" if report["verdict"] != "pass" else "fail"
        refused = editor.post(f"/v1/promotions/{pid}/report", json=claimed)
        assert refused.status_code == 409 and "its cases give" in refused.json()["detail"]
        assert get_promotion(store, pid).state == "gating"
        taken = editor.post(f"/v1/promotions/{pid}/report", json=report)
        assert taken.status_code == 200 and taken.json()["state"] == "passed"


def test_request_bodies_over_the_limit_are_413(api: Api) -> None:
    from promptgate.limits import MAX_BODY_BYTES

    big = {"content": {**CONTENT, "description": "x" * MAX_BODY_BYTES}, "message": "m"}
    data = json.dumps(big).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for i in range(0, len(data), 1 << 20):
            yield data[i : i + (1 << 20)]

    with api.client("editor") as c:
        declared = c.post(
            "/v1/prompts/greet/versions",
            content=data,
            headers={"Content-Type": "application/json"},
        )
        streamed = c.post(
            "/v1/prompts/greet/versions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        for r in (declared, streamed):
            assert r.status_code == 413, r.text
            assert r.json() == {
                "error": "too_large",
                "detail": f"request body is larger than the limit of {MAX_BODY_BYTES:,} bytes",
            }
        # a template over the template limit fits the body limit but is refused as content
        long = c.post(
            "/v1/prompts/greet/versions",
            json={"content": {**CONTENT, "template": "x" * 300_000}, "message": "m"},
        )
        assert long.status_code == 422 and "the limit is 200,000" in long.json()["detail"]
        assert c.get("/v1/prompts").json() == []
        assert push(c).status_code == 201  # the connection pool still works
