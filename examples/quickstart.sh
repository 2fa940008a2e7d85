#!/usr/bin/env bash
# The quickstart: the whole gate on the shipped support-desk example, with no model key.
# Model calls are served from evals/responses.jsonl (scripted, not from a real model: see
# examples/record.py). With OPENAI_API_KEY set, requests not in the recording go live.
set -euo pipefail
cd "$(dirname "$0")/.."
set -x
promptgate init
promptgate cache import evals/responses.jsonl
promptgate push -m "Support desk prompts, first version"
promptgate promote --changed --to production --reason "Initial release"
promptgate push examples/summarize-v2.yaml -m "Summaries lead with the customer's deadline"
promptgate check summarize@v2 --report-md gate-report.md --report-json gate-report.json
promptgate promote summarize@v2 --to production --reason "Deadline-first summaries"
promptgate log --limit 8
