"""`file://` values and Python checks: files and modules are loaded once per file version
(mtime and size), the folder of a check put on `sys.path`; inline python is compiled once.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._js import _JS_SPACE
from ._jsonscan import _load_yaml
from ._types import AssertContext, _EvalError

_FILE_PREFIX = "file://"
_module_cache: dict[str, tuple[tuple[int, int], Any]] = {}
_file_cache: dict[str, tuple[tuple[int, int], Any]] = {}


def _split_file_ref(value: str) -> tuple[str, str | None]:
    ref = value[len(_FILE_PREFIX) :]
    if ":" in ref:
        path, fn = ref.split(":", 1)
        return path, fn or None
    return ref, None


def _resolve(ctx: AssertContext, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(ctx.suite_dir) / p


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise _EvalError(f"cannot read {path}: {exc.strerror or exc}") from None
    return st.st_mtime_ns, st.st_size


def _load_module(path: Path) -> Any:
    key = str(path.resolve())
    stamp = _stamp(path)
    cached = _module_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as promptfoo's wrapper does: sibling imports work
    name = f"promptgate_check_{abs(hash(key)):x}_{stamp[0]:x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _EvalError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code
        raise _EvalError(f"loading {path} failed: {type(exc).__name__}: {exc}") from None
    _module_cache[key] = (stamp, module)
    return module


def _python_function(ctx: AssertContext, value: str) -> Callable[..., Any]:
    path_text, fn_name = _split_file_ref(value)
    module = _load_module(_resolve(ctx, path_text))
    target: Any = module
    for part in (fn_name or "get_assert").split("."):
        target = getattr(target, part, None)
        if target is None:
            raise _EvalError(f"{path_text} has no function {fn_name or 'get_assert'!r}")
    if not callable(target):
        raise _EvalError(f"{path_text}:{fn_name or 'get_assert'} is not a function")
    return target  # type: ignore[no-any-return]


async def _call_python(fn: Callable[..., Any], output: str, ctx: AssertContext) -> Any:
    context = {"vars": dict(ctx.vars), "prompt": ctx.prompt}
    try:
        result = fn(output, context)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # user code
        raise _EvalError(f"Python code execution failed: {type(exc).__name__}: {exc}") from None
    return result


def _load_file_value(ctx: AssertContext, ref: str) -> Any:
    """promptfoo processFileReference: .json/.yaml/.yml parsed, .txt trimmed."""
    path = _resolve(ctx, ref[len(_FILE_PREFIX) :])
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".txt"):
        raise _EvalError(f"Unsupported file type: {path}")
    key = str(path)
    stamp = _stamp(path)
    cached = _file_cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = path.read_text(encoding="utf-8")
    try:
        value = text.strip(_JS_SPACE) if suffix == ".txt" else _load_yaml(text)
    except Exception as exc:  # YAML errors
        raise _EvalError(f"cannot parse {path}: {exc}") from None
    _file_cache[key] = (stamp, value)
    return value


@lru_cache(maxsize=256)
def _inline_python(code: str) -> Callable[..., Any]:
    """promptfoo's inline python: the value is the body of `def main(output, context)`."""
    if "\n" in code:
        m = re.search(r"^(?!\s*$)\s+", code, re.MULTILINE)
        indent = m.group() if m else "    "
        body = "\n".join(indent + line for line in code.split("\n"))
    else:
        body = f"    return {code}"
    namespace: dict[str, Any] = {}
    exec(
        compile(
            f"import json\n\ndef main(output, context):\n{body}\n", "<python assertion>", "exec"
        ),
        namespace,
    )
    return namespace["main"]  # type: ignore[no-any-return]
