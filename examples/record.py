"""Re-create evals/responses.jsonl, the recording the quickstart replays without a model key.

The recorded responses were NOT produced by a real model. They are hand-written answers served
by promptgate's local OpenAI-compatible test server (promptgate.testing), picked by which
prompt asked and about which ticket. They exist so that a new user can run the whole gate on a
fresh machine with no key. With OPENAI_API_KEY (or OPENAI_BASE_URL) set, every request that is
not in the cache goes to the real endpoint instead.

Run from the repository root:  python examples/record.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from promptgate.testing import OpenAITestServer, Reply

ROOT = Path(__file__).resolve().parent.parent

TICKETS: dict[str, dict[str, str]] = {
    "1182": {
        "extract": json.dumps(
            {
                "order_id": "1182",
                "product": "blender",
                "issue": "jar arrived cracked",
                "requested_action": "refund",
                "deadline": "Friday",
            }
        ),
        "summarize": "Order 1182: the blender arrived with a cracked jar. The customer wants a "
        "refund before Friday because they are moving house.",
        "summarize-v2": "Deadline Friday. Order 1182: blender arrived with a cracked jar; the "
        "customer wants a refund before they move house.",
        "reply": "Hi, I'm so sorry your blender from order 1182 arrived with a cracked jar. I "
        "have started a refund request and flagged that you are moving on Friday; I "
        "will confirm the refund status as soon as our returns team approves it.",
        "classify": "shipping",
    },
    "INV-5531": {
        "extract": json.dumps(
            {
                "order_id": "INV-5531",
                "product": None,
                "issue": "charged twice this month",
                "requested_action": "reverse one charge",
                "deadline": None,
            }
        ),
        "summarize": "Invoice INV-5531 was charged twice this month. The customer asks us to "
        "reverse the duplicate charge.",
        "summarize-v2": "No deadline given. Invoice INV-5531 was charged twice this month; the "
        "customer asks us to reverse the duplicate charge.",
        "reply": "Hello, thank you for telling us about the double charge on invoice INV-5531. "
        "I have asked our billing team to reverse the duplicate charge and will email "
        "you once it is processed.",
        "classify": "billing",
    },
    "Android": {
        "extract": json.dumps(
            {
                "order_id": None,
                "product": "Android app",
                "issue": "logged out when opening settings",
                "requested_action": "fix the logout",
                "deadline": None,
            }
        ),
        "summarize": "The Android app logs the customer out whenever they open the settings "
        "page (Pixel 8, Android 14). They want it fixed.",
        "summarize-v2": "No deadline given. The Android app logs the customer out whenever they "
        "open the settings page (Pixel 8, Android 14); they want it fixed.",
        "reply": "Hi, sorry about the logouts when you open settings in our Android app. I "
        "have passed the details of your Pixel 8 on Android 14 to our mobile team and "
        "will update you when we have a fix.",
        "classify": "technical",
    },
    "2209": {
        "extract": json.dumps(
            {
                "order_id": "2209",
                "product": None,
                "issue": "tracking 1Z999AA10123456784 not updated since Monday",
                "requested_action": "locate the parcel",
                "deadline": None,
            }
        ),
        "summarize": "Order 2209: tracking has not updated since Monday. The customer wants to "
        "know where the parcel is.",
        "summarize-v2": "No deadline given. Order 2209: tracking has not updated since Monday; "
        "the customer wants to know where the parcel is.",
        "reply": "Hello, I'm sorry your parcel for order 2209 seems stuck: its tracking has "
        "not moved since Monday. I will open a trace with the carrier today and write "
        "back with what they find.",
        "classify": "shipping",
    },
}


def _text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body["messages"])


def respond(body: dict[str, Any]) -> Reply | str:
    """The scripted answer for one request (see the module docstring)."""
    text = _text(body)
    if "You are grading output" in text:
        rubric = text.split("<Rubric>")[-1].split("</Rubric>")[0].strip()
        return json.dumps(
            {
                "reason": f"Scripted verdict: the output meets '{rubric}'.",
                "pass": True,
                "score": 1.0,
            }
        )
    ticket = next((k for k in TICKETS if k in text), None)
    if ticket is None:
        return "I do not have a scripted answer for this request."
    answers = TICKETS[ticket]
    if "extract facts" in text:
        return answers["extract"]
    if "Route this support ticket" in text:
        return answers["classify"]
    if "draft replies" in text:
        return answers["reply"]
    if "Lead with the customer's deadline" in text:
        return answers["summarize-v2"]
    return answers["summarize"]


def main() -> int:
    out = ROOT / "evals" / "responses.jsonl"
    with OpenAITestServer(respond) as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "example"
        for item in ("prompts", "evals", "examples", "promptgate.yaml"):
            src = ROOT / item
            (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
        (work / "evals" / "responses.jsonl").unlink(missing_ok=True)
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "scripted",
            "PROMPTGATE_AUTHOR": "recorder",
        }
        steps = [
            ["init"],
            ["push", "-m", "first version"],
            ["promote", "--changed", "--to", "production", "--reason", "record"],
            ["push", "examples/summarize-v2.yaml", "-m", "deadline first"],
            ["check", "summarize@v2"],
            ["cache", "export", str(out)],
        ]
        exe = Path(sys.executable).with_name("promptgate")
        for step in steps:
            subprocess.run(
                [str(exe), *step],
                cwd=work,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL if step[0] != "promote" else None,
            )
    lines = out.read_text().splitlines()
    header = {
        "key": "#",
        "note": "Scripted responses from promptgate.testing, not from a real "
        "model: see examples/record.py.",
    }
    out.write_text("\n".join([json.dumps(header), *lines]) + "\n")
    print(f"wrote {len(lines)} responses to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
