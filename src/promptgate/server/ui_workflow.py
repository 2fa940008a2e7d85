"""Workflow pages of the web UI (README: web UI): rollback in one click, withdrawing a request.

`mount_workflow` also mounts the editor (ui_editor.py) and the Try panel (ui_try.py).

Routes (outside /v1, left out of the OpenAPI schema, errors as HTML pages like ui.py's):
  POST /prompts/{name}/labels/{label}/rollback   {to, reason}: approver; no gate, audited as a
                                                 rollback exactly as `promptgate rollback`
  POST /promotions/{id}/withdraw                 {comment?}: the request's author, while it is
                                                 gating or passed -> state `withdrawn`
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response

from ..errors import BadInput
from ..registry import rollback
from ..store import get_promotion, update_promotion
from .formvalues import whole_number
from .ui import PageError, Posted, UiRoute, _check_name, posted, prompt_view
from .ui_editor import router as editor_router
from .ui_try import router as try_router

WITHDRAWABLE = ("gating", "passed")

router = APIRouter(
    route_class=UiRoute, include_in_schema=False, default_response_class=HTMLResponse
)


@router.post("/prompts/{name}/labels/{label}/rollback")
def rollback_label(name: str, label: str, form: Posted = posted("approver")) -> Response:
    ui = form.ui
    assert ui.user is not None
    _check_name(name)
    to, reason = form.get("to"), form.get("reason").strip()
    try:
        target = whole_number(to)
        if target is None:
            raise BadInput("choose the version to roll back to")
        if not reason:
            raise BadInput("a reason is required")
        rollback(ui.state.store, name, label, to=target, actor=ui.user.name, reason=reason)
    except BadInput as exc:
        return prompt_view(ui, name, None, rollback_error=(label, str(exc)))
    ui.state.hub.notify()
    return ui.redirect(f"/prompts/{quote(name)}?rolled={quote(label)}")


@router.post("/promotions/{pid}/withdraw")
def withdraw(pid: int, form: Posted = posted("editor")) -> Response:
    ui = form.ui
    assert ui.user is not None
    promotion = get_promotion(ui.state.store, pid)
    if promotion.author != ui.user.name:
        raise PageError(403, "Not allowed", "only the person who filed a request can withdraw it")
    comment = form.get("comment").strip() or None
    done = promotion.state in WITHDRAWABLE and update_promotion(
        ui.state.store,
        pid,
        expect_state=WITHDRAWABLE,
        state="withdrawn",
        decided_by=ui.user.name,
        comment=comment,
    )
    if not done:
        state = get_promotion(ui.state.store, pid).state
        raise PageError(409, "Conflict", f"request {pid} is {state}: it can no longer be withdrawn")
    ui.state.hub.notify()
    return ui.redirect(f"/promotions/{pid}")


def mount_workflow(app: FastAPI) -> None:
    """Add these pages and the Try panel's route to the app (next to ui.mount_ui's)."""
    app.include_router(router)
    app.include_router(editor_router)
    app.include_router(try_router)
