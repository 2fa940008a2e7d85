"""Partials (DESIGN section 10): shared text as versioned prompts, `{% include %}`d by name at
the includer's label, and an edge of the gate's graph."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Project

from promptgate.config import Config
from promptgate.domain import LabelMove
from promptgate.lockfile import LockfileError, read_lock, write_lock
from promptgate.sdk import PromptClient
from promptgate.server import ServerSettings, create_app
from promptgate.server.thread import ServerThread
from promptgate.store import Store, create_key
from promptgate.testing import OpenAITestServer

TONE = """\
name: tone
partial: true
description: How every customer-facing text sounds.
template: "Be warm and brief."
"""

REPLY = """\
name: reply
model: {name: m}
messages:
  - role: system
    content: '{% include "tone" %} You answer customers.'
  - role: user
    content: "{{ ticket }}"
"""

NOTE = """\
name: note
model: {name: m}
template: '{% include "tone" %} Write an internal note on: {{ ticket }}'
"""

OTHER = """\
name: other
model: {name: m}
template: "Classify: {{ ticket }}"
"""


def _suite(prompt: str) -> str:
    return (
        f"prompt: {prompt}\ncases:\n  - id: one\n    vars: {{ticket: hello}}\n"
        "    assert: [{type: not-icontains, value: rude}]\n"
    )


@pytest.fixture(scope="module")
def llm() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def desk(project: Project, llm: OpenAITestServer, monkeypatch: pytest.MonkeyPatch) -> Project:
    llm.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    (project.root / "prompts" / "extract.yaml").unlink()
    (project.root / "prompts" / "summarize.yaml").unlink()
    project.write("promptgate.yaml", "protected_labels: []\ngate: {retries: 0}\n")
    for name, text in (("tone", TONE), ("reply", REPLY), ("note", NOTE), ("other", OTHER)):
        project.write(f"prompts/{name}.yaml", text)
    for name in ("reply", "note", "other"):
        project.write(f"evals/{name}.yaml", _suite(name))
    result = project.run("push", "-m", "first")
    assert result.exit_code == 0, result.stderr
    for name in ("tone", "reply", "note", "other"):
        assert project.run("label", "set", name, "production", "--reason", "r").exit_code == 0
    return project


def test_includers_render_the_partial_at_their_label(desk: Project) -> None:
    rendered = desk.json("render", "reply@production", "--var", "ticket=hi")
    assert rendered[0]["content"] == "Be warm and brief. You answer customers."
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "formal"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "formal").exit_code == 0
    # production still renders tone@production; latest follows tone@latest
    assert desk.json("render", "reply@production", "--var", "ticket=hi")[0]["content"].startswith(
        "Be warm"
    )
    assert desk.json("render", "reply", "--var", "ticket=hi")[0]["content"].startswith("Be formal")
    # a move of the partial's label changes what the includer renders, with no new reply version
    assert desk.run("label", "set", "tone@v2", "production", "--reason", "r").exit_code == 0
    assert desk.json("render", "reply@production", "--var", "ticket=hi")[0]["content"].startswith(
        "Be formal"
    )
    store = Store(desk.registry)
    try:
        assert store.label_version("reply", "production") == 1
    finally:
        store.close()


def test_a_candidate_partial_gates_every_includer_and_nothing_else(
    desk: Project, llm: OpenAITestServer
) -> None:
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "rude and long"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "worse").exit_code == 0
    llm.reset()
    out = desk.root / "r.json"
    result = desk.run("check", "tone@v2", "--report-json", str(out))
    report = json.loads(out.read_text())
    assert result.exit_code == 1 and report["verdict"] == "fail"
    reasons = {a["name"]: a["reason"] for a in report["affected"]}
    assert reasons == {"tone": "changed", "note": "includes tone", "reply": "includes tone"}
    assert {s["prompt"] for s in report["suites"]} == {"note", "reply"}  # a partial has no suite
    assert not any("no eval suite" in p for p in report["problems"])
    texts = [json.dumps(r.body["messages"]) for r in llm.requests]
    assert texts and not any("Classify" in t for t in texts)  # the unrelated prompt never ran
    # the candidate side sent the candidate's text, the baseline side production's
    assert any("rude and long" in t for t in texts) and any("warm and brief" in t for t in texts)
    edges = {(e[0], e[1]) for e in report["graph"]["edges"]}
    assert edges == {("tone", "note"), ("tone", "reply")}


def test_a_pinned_include_is_not_an_edge(desk: Project, llm: OpenAITestServer) -> None:
    desk.write(
        "prompts/other.yaml",
        OTHER.replace(
            '"Classify: {{ ticket }}"', "'{% include \"tone@v1\" %} Classify: {{ ticket }}'"
        ),
    )
    assert desk.run("push", "prompts/other.yaml", "-m", "pin").exit_code == 0
    assert desk.run("label", "set", "other", "production", "--reason", "r").exit_code == 0
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "terse"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "terse").exit_code == 0
    shown = desk.run("graph", "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    graph = json.loads(shown.stdout)
    kinds = {(e["from"], e["to"]): e["kind"] for e in graph["edges"]}
    assert kinds == {("tone", "note"): "include", ("tone", "reply"): "include"}
    out = desk.root / "r.json"
    desk.run("check", "tone@v2", "--report-json", str(out))
    assert "other" not in {a["name"] for a in json.loads(out.read_text())["affected"]}
    rendered = desk.json("render", "other", "--var", "ticket=x")
    assert rendered[0]["content"] == "Be warm and brief. Classify: x"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"reply.yaml": REPLY.replace('"tone"', '"voice"')},
            'include "voice" %} names no stored partial',
        ),
        ({"reply.yaml": REPLY.replace('"tone"', '"other"')}, "a prompt that is not a partial"),
        (
            {"reply.yaml": REPLY.replace('"tone"', "name")},
            "an include must name a partial in quotes",
        ),
        (
            {"reply.yaml": REPLY.replace('"tone"', '"tone@v9"')},
            'include "tone@v9" %} names no stored version',
        ),
        (
            {
                "tone.yaml": TONE.replace('"Be warm and brief."', "'{% include \"style\" %}'"),
                "style.yaml": "name: style\npartial: true\ntemplate: '{% include \"tone\" %}'\n",
            },
            "include cycle: ",
        ),
        (
            {"tone.yaml": TONE + "model: {name: m}\n"},
            "a partial holds only name, description and template",
        ),
        (
            {"note.yaml": NOTE + "inputs:\n  extra: {from: tone}\n"},
            "tone is a partial, which has no output",
        ),
        (
            {"reply.yaml": REPLY.replace('{% include "tone" %}', '{% extends "tone" %}')},
            "only {% include",
        ),
    ],
)
def test_bad_includes_are_refused_at_push_and_store_nothing(
    desk: Project, files: dict[str, str], message: str
) -> None:
    store = Store(desk.registry)
    try:
        before = [(v.name, v.version) for v in store.list_at_label("latest")]
        for name, text in files.items():
            desk.write(f"prompts/{name}", text)
        result = desk.run("push", "-m", "bad")
        assert result.exit_code == 2, result.stdout
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert [(v.name, v.version) for v in store.list_at_label("latest")] == before
    finally:
        store.close()


def test_promoting_a_partial_moves_only_its_label(desk: Project, llm: OpenAITestServer) -> None:
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "warm, brief and exact"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "exact").exit_code == 0
    result = desk.run("promote", "tone@v2", "--to", "production", "--reason", "house style")
    assert result.exit_code == 0, result.stderr
    assert "tone@production: v1 -> v2" in result.stdout
    store = Store(desk.registry)
    try:
        assert store.label_map("production") == {"note": 1, "other": 1, "reply": 1, "tone": 2}
    finally:
        store.close()
    listed = desk.run("list")
    assert "tone (partial)" in listed.stdout and "reply (partial)" not in listed.stdout
    rendered = desk.json("render", "note@production", "--var", "ticket=x")
    assert rendered[0]["content"].startswith("Be warm, brief and exact.")


def test_a_report_made_before_a_partial_moved_is_stale(desk: Project) -> None:
    desk.write("prompts/reply.yaml", REPLY.replace("You answer customers.", "You answer."))
    assert desk.run("push", "prompts/reply.yaml", "-m", "shorter").exit_code == 0
    out = desk.root / "r.json"
    assert desk.run("check", "reply@v2", "--report-json", str(out)).exit_code == 0
    report = json.loads(out.read_text())
    assert report["upstream"] == [
        {"name": "tone", "version": 1, "content_hash": report["upstream"][0]["content_hash"]}
    ]
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "rude"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "rude").exit_code == 0
    assert desk.run("label", "set", "tone@v2", "production", "--reason", "r").exit_code == 0
    result = desk.run(
        "promote", "--from-report", str(out), "--to", "production", "--reason", "old evidence"
    )
    assert result.exit_code == 3 and "upstream tone at v1" in result.stderr
    store = Store(desk.registry)
    try:
        assert store.label_version("reply", "production") == 1
    finally:
        store.close()


def test_an_include_cycle_through_a_pinned_partial_is_refused(desk: Project) -> None:
    desk.write("prompts/voice.yaml", "name: voice\npartial: true\ntemplate: hi\n")
    assert desk.run("push", "prompts/voice.yaml", "-m", "v").exit_code == 0
    desk.write(
        "prompts/tone.yaml", TONE.replace('"Be warm and brief."', "'{% include \"voice\" %}'")
    )
    assert desk.run("push", "prompts/tone.yaml", "-m", "t").exit_code == 0  # tone@v2
    desk.write(
        "prompts/voice.yaml", "name: voice\npartial: true\ntemplate: '{% include \"tone@v2\" %}'\n"
    )
    result = desk.run("push", "prompts/voice.yaml", "-m", "loop")
    assert result.exit_code == 2, result.stdout
    assert "include cycle: " in result.stderr and "tone@v2" in result.stderr


# -- resolved prompts: show, diff, the server, the SDK, the lock file ---------------------------


def _reference_resolved_hash(includer_hash: str, included: list[tuple[str, str]]) -> str:
    """The documented formula, written out: SHA-256 of the canonical JSON of
    [includer's content hash, sorted [include, partial content hash] pairs, missing]."""
    body = json.dumps([includer_hash, sorted([k, h] for k, h in included), []])
    return hashlib.sha256(body.replace(", ", ",").encode()).hexdigest()


def _move_tone(desk: Project, text: str) -> None:
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", text))
    assert desk.run("push", "prompts/tone.yaml", "-m", text).exit_code == 0
    assert desk.run("label", "set", "tone@latest", "production", "--reason", "r").exit_code == 0


def test_show_resolved_and_diff_give_the_included_text(desk: Project) -> None:
    shown = desk.json("show", "reply@production", "--resolved", "--json")
    tone = desk.json("show", "tone@production", "--json")
    [included] = shown["resolved"]["includes"]
    assert (included["include"], included["version"]) == ("tone", 1)
    assert shown["resolved"]["resolved_hash"] == _reference_resolved_hash(
        shown["content_hash"], [("tone", tone["content_hash"])]
    )
    text = desk.run("show", "reply@production", "--resolved").stdout
    assert "Be warm and brief. You answer customers." in text and "{% include" not in text
    assert "{% include" in desk.run("show", "reply@production").stdout  # as stored, without
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "formal"))
    assert desk.run("push", "prompts/tone.yaml", "-m", "formal").exit_code == 0
    diff = desk.json("diff", "reply@production", "reply@latest", "--json")
    assert diff["identical"] is True and diff["text"] == ""  # reply itself did not change
    change = diff["includes"]["tone"]
    assert (change["from"], change["to"]) == ("tone@v1", "tone@v2")
    assert "-Be warm and brief." in change["text"] and "+Be formal." in change["text"]
    plain = desk.run("diff", "reply@production", "reply@latest").stdout
    assert "what they include differs" in plain and "+Be formal." in plain
    assert desk.json("diff", "reply@production", "reply@production", "--json")["includes"] == {}


def test_the_server_serves_the_resolved_prompt_and_a_partial_move_changes_it(
    desk: Project,
) -> None:
    app = create_app(ServerSettings(registry=desk.registry, config=Config(root=desk.root)))
    key = create_key(app.state.pg.store, "viewer", "viewer")
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        first = http.get("/v1/prompts/reply", params={"label": "production"})
        assert first.status_code == 200
        body = first.json()
        assert [i["version"] for i in body["resolved"]["includes"]] == [1]
        assert body["resolved"]["includes"][0]["content"]["template"] == "Be warm and brief."
        snap = http.get("/v1/snapshot", params={"label": "production", "names": "reply"}).json()
        assert snap["prompts"]["reply"]["resolved"] == body["resolved"]
        _move_tone(desk, "formal")  # (another process: the server hears of it shortly)
        deadline = time.monotonic() + 10
        while True:
            again = http.get(
                "/v1/prompts/reply",
                params={"label": "production"},
                headers={"If-None-Match": first.headers["etag"]},
            )
            if again.status_code != 304:
                break
            assert time.monotonic() < deadline, "the partial's move never changed the ETag"
            time.sleep(0.05)
        assert again.status_code == 200
        moved = again.json()
        assert moved["version"] == body["version"] == 1  # no new reply version
        assert moved["resolved"]["includes"][0]["version"] == 2
        assert moved["resolved"]["resolved_hash"] != body["resolved"]["resolved_hash"]
        assert int(again.headers["x-promptgate-seq"]) > int(first.headers["x-promptgate-seq"])


@pytest.mark.parametrize("through", ["server", "database"])
def test_the_sdk_renders_the_partial_and_follows_its_moves(desk: Project, through: str) -> None:
    app = create_app(ServerSettings(registry=desk.registry, config=Config(root=desk.root)))
    key = create_key(app.state.pg.store, "viewer", "viewer")
    with ServerThread(app) as server:
        url = server.url if through == "server" else desk.registry
        # events: no periodic re-read within the test (every 10 x ttl_s), so only the partial's
        # move event can bring the new text; a database is polled every ttl_s
        ttl_s = 60.0 if through == "server" else 0.1
        with PromptClient(url, api_key=key, ttl_s=ttl_s, long_poll_s=1.0) as client:
            p = client.get("reply", label="production")
            assert p.render(ticket="hi")[0]["content"] == "Be warm and brief. You answer customers."
            assert p.includes == {"tone": "Be warm and brief."}
            before = p.trace_attributes["resolved_hash"]
            _move_tone(desk, "formal")
            deadline = time.monotonic() + 10
            while client.get("reply", label="production").version == 1 and (
                client.get("reply", label="production").resolved_hash == before
            ):
                assert time.monotonic() < deadline, "the SDK never saw the partial move"
                time.sleep(0.05)
            now = client.get("reply", label="production")
            assert now.version == 1 and now.trace_attributes["resolved_hash"] != before
            assert now.render(ticket="hi")[0]["content"] == "Be formal. You answer customers."
            assert client.get("other", label="production").render(ticket="x")  # untouched


def test_a_lock_file_carries_the_partials_and_serves_them_when_the_registry_is_down(
    desk: Project, tmp_path: Path
) -> None:
    store = Store(desk.registry)
    try:
        doc = write_lock(store, ["reply"], "production", tmp_path / "lock.json")
    finally:
        store.close()
    assert set(doc["prompts"]) == {"reply"}  # the partial travels inside its includer's entry
    with PromptClient(
        "http://127.0.0.1:9", api_key="k", fallback=tmp_path / "lock.json", timeout_s=0.5
    ) as client:
        p = client.get("reply", label="production")
        assert p.render(ticket="hi")[0]["content"] == "Be warm and brief. You answer customers."
    edited = json.loads((tmp_path / "lock.json").read_text())
    entry = edited["prompts"]["reply"]["resolved"]["includes"][0]
    entry["content"]["template"] = "Be rude."
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    with pytest.raises(LockfileError, match="hash mismatch"):
        read_lock(tmp_path / "edited.json")


def test_promote_changed_picks_up_a_partial_and_its_rollback_says_what_it_changes(
    desk: Project,
) -> None:
    desk.write("prompts/tone.yaml", TONE.replace("warm and brief", "warm, brief and exact"))
    assert desk.run("push", "-m", "exact").exit_code == 0  # only tone's content changed
    promoted = desk.run("promote", "--changed", "--to", "production", "--reason", "style")
    assert promoted.exit_code == 0, promoted.stderr
    assert "tone@production: v1 -> v2" in promoted.stdout
    rolled = desk.run("rollback", "tone", "--label", "production", "--reason", "too stiff")
    assert rolled.exit_code == 0, rolled.stderr
    assert "tone is a partial: note@production, reply@production now render tone@v1" in (
        rolled.stdout
    )
    [last] = desk.json("log", "tone", "--label", "production", "--limit", "1", "--json")
    assert last["details"] == {"rollback": True, "renders": ["note", "reply"]}
    assert desk.json("render", "reply@production", "--var", "ticket=x")[0]["content"].startswith(
        "Be warm and brief."
    )


def test_a_non_partial_at_the_label_breaks_only_its_includer(desk: Project) -> None:
    desk.write("prompts/reply.yaml", REPLY.replace('{% include "tone" %} ', ""))
    desk.write("prompts/note.yaml", NOTE.replace('{% include "tone" %} ', ""))
    desk.write("prompts/tone.yaml", "name: tone\nmodel: {name: m}\ntemplate: 'Now a prompt.'\n")
    pushed = desk.run("push", "-m", "tone becomes a prompt")  # nothing at latest uses it
    assert pushed.exit_code == 0, pushed.stderr
    # note@production still includes tone: moving tone@production onto a non-partial is refused
    refused = desk.run("label", "set", "tone@v2", "production", "--reason", "r")
    assert refused.exit_code == 2 and "tone@v2 is not a partial" in refused.stderr
    assert "note, reply at production include tone" in refused.stderr
    store = Store(desk.registry)
    try:
        assert store.label_version("tone", "production") == 1
        # a store written around the rule (or by an older promptgate) is served, not broken
        store.move_labels([LabelMove("tone", "production", 2, 1, "forced")], actor="test")
    finally:
        store.close()
    assert desk.json("render", "other@production", "--var", "ticket=x")  # unrelated: unharmed
    broken = desk.run("render", "note@production", "--var", "ticket=x")
    assert broken.exit_code == 2
    assert 'include "tone"' in broken.stderr and "no partial version at production" in (
        broken.stderr
    )
    shown = desk.json("show", "note@production", "--resolved", "--json")
    assert shown["resolved"]["missing"] == ["tone"] and shown["resolved"]["includes"] == []
    app = create_app(ServerSettings(registry=desk.registry, config=Config(root=desk.root)))
    key = create_key(app.state.pg.store, "viewer", "viewer")
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        snap = http.get("/v1/snapshot", params={"label": "production"})
        assert snap.status_code == 200, snap.text
        assert snap.json()["prompts"]["note"]["resolved"]["missing"] == ["tone"]
        assert http.get("/v1/prompts/note", params={"version": 1}).status_code == 200


def test_the_api_refuses_the_same_move_as_label_set(desk: Project) -> None:
    desk.write("prompts/reply.yaml", REPLY.replace('{% include "tone" %} ', ""))
    desk.write("prompts/note.yaml", NOTE.replace('{% include "tone" %} ', ""))
    desk.write("prompts/tone.yaml", "name: tone\nmodel: {name: m}\ntemplate: 'Now a prompt.'\n")
    assert desk.run("push", "-m", "tone becomes a prompt").exit_code == 0
    config = Config(root=desk.root, protected_labels=())  # as the desk's promptgate.yaml
    app = create_app(ServerSettings(registry=desk.registry, config=config))
    key = create_key(app.state.pg.store, "editor", "editor")
    with (
        ServerThread(app) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        move = {"version": 2, "reason": "r"}
        refused = http.put("/v1/prompts/tone/labels/production", json=move)
        assert refused.status_code == 400, refused.text
        assert "note, reply at production include tone" in refused.json()["detail"]
        assert http.put("/v1/prompts/tone/labels/staging", json=move).status_code == 200
    store = Store(desk.registry)
    try:
        assert store.label_version("tone", "production") == 1
        assert store.label_version("tone", "staging") == 2
    finally:
        store.close()
