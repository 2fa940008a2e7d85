"""Size limits on what promptgate reads, stores and renders, in one place (README "Limits").

Each limit is refused with one line naming the file (or request) and the limit, before anything
is written: a hostile or broken input costs an error, never a hang or exhausted memory.
"""

from __future__ import annotations

MiB = 1024 * 1024

MAX_PROMPT_FILE_BYTES = 1 * MiB  # a prompt file, promptgate.yaml, any other YAML file read
MAX_SUITE_FILE_BYTES = 8 * MiB  # a suite file or its case file (.jsonl, .csv, .yaml)
MAX_YAML_DEPTH = 64  # nested mappings/sequences in a YAML document
MAX_YAML_NODES = 1_000_000  # nodes of a YAML document, aliases counted as what they expand to
MAX_TEMPLATE_CHARS = 200_000  # one template (`template` or one message's `content`)
MAX_MESSAGES = 1_000  # messages of a prompt
MAX_MODEL_KEYS = 100  # keys of a prompt's `model` block
MAX_RENDER_CHARS = 2_000_000  # what one template may render to (and any string built on the way)
MAX_BODY_BYTES = 16 * MiB  # an HTTP request body to the server (413 above it)
