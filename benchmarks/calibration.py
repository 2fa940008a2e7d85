"""How often the statistical gate fails an equally good candidate (false alarms) and how often it
catches a real drop (detection), measured through the whole gate against the local
chat-completions server (promptgate.testing), scripted to answer right with a fixed probability
per version, independently per request (a nondeterministic model).

    python benchmarks/calibration.py [--trials 100] [--cases 300]

Prints, per scenario, the share of checks whose verdict was fail / inconclusive / pass, and the
share a plain pass-rate threshold would have failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from promptgate.config import load_config
from promptgate.gate import check
from promptgate.registry import LabelPolicy, push_paths, set_label
from promptgate.store import Store
from promptgate.testing import OpenAITestServer, chance

CONFIG = """\
registry: sqlite:///{root}/registry.db
gate: {{label: production, concurrency: 32, retries: 0}}
"""


def _project(root: Path, cases: int, threshold: float) -> Store:
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    (root / "promptgate.yaml").write_text(CONFIG.format(root=root))
    (root / "evals" / "quiz.yaml").write_text(
        f"prompt: quiz\nthreshold: {threshold}\ncases: quiz.jsonl\n"
    )
    with open(root / "evals" / "quiz.jsonl", "w") as fh:
        for i in range(cases):
            case = {"id": f"q{i}", "vars": {"i": i}, "assert": [{"type": "equals", "value": "ok"}]}
            fh.write(json.dumps(case) + "\n")
    store = Store(f"sqlite:///{root}/registry.db", create=True)
    store.migrate()
    prompt = root / "prompts" / "quiz.yaml"
    for marker in ("A", "B"):
        prompt.write_text(
            f'name: quiz\nmodel: {{name: quiz-model}}\ntemplate: "Quiz {{{{ i }}}} ({marker})"\n'
        )
        push_paths(store, [prompt], message=marker, author="bench")
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--base-rate", type=float, default=0.85)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args(argv)
    scenarios = [
        ("equally good", args.base_rate),
        ("2-point drop (within margin)", args.base_rate - 0.02),
        ("10-point drop", args.base_rate - 0.10),
        ("12-point drop", args.base_rate - 0.12),
    ]
    with OpenAITestServer() as llm, tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_BASE_URL"] = llm.base_url
        os.environ["OPENAI_API_KEY"] = "bench"
        root = Path(tmp)
        store = _project(root, args.cases, args.threshold)
        set_label(
            store,
            "quiz@v1",
            "production",
            policy=LabelPolicy(protected=frozenset()),
            reason="baseline",
            actor="bench",
        )
        config = load_config(root / "promptgate.yaml")
        print(
            f"{args.trials} trials x {args.cases} paired cases, baseline right "
            f"{args.base_rate:.0%}, threshold {args.threshold}, margin/alpha from defaults"
        )
        print(f"{'scenario':32} {'fail':>6} {'inconcl.':>9} {'pass':>6} {'threshold fails':>16}")
        for name, rate in scenarios:
            counts = {"fail": 0, "inconclusive": 0, "pass": 0}
            threshold_fails = 0
            for trial in range(args.trials):
                llm.reset()
                llm.reply("(A)", chance(args.base_rate, "ok", "no", seed=f"{trial}"))
                llm.reply("(B)", chance(rate, "ok", "no", seed=f"{trial}-{name}"))
                report = check(store, config, ["quiz@v2"], no_cache=True).report
                counts[report["verdict"]] += 1
                threshold_fails += not report["suites"][0]["passed"]
            n = args.trials
            print(
                f"{name:32} {counts['fail'] / n:6.1%} {counts['inconclusive'] / n:9.1%} "
                f"{counts['pass'] / n:6.1%} {threshold_fails / n:16.1%}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
