"""Project configuration (`promptgate.yaml`): strict keys, defaults, registry location.

Precedence: command-line flags, then environment (`PROMPTGATE_REGISTRY`), then the file, then
built-in defaults. Unknown keys are errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .policy import CompareSettings, parse_compare
from .yamlload import load_yaml_file

CONFIG_FILE = "promptgate.yaml"
DEFAULT_REGISTRY = "sqlite:///.promptgate/registry.db"

DEFAULT_CONFIG_TEXT = """\
# promptgate project configuration: see the README for every key.
registry: sqlite:///.promptgate/registry.db   # or postgresql://..., or http(s)://... (a server)
prompts: prompts/
evals: evals/
protected_labels: [production]
gate:
  label: production
  concurrency: 16
  timeout_s: 60
  retries: 4
  allow_missing_suites: false
  compare: {margin: 0.05, alpha: 0.05, inconclusive: warn}   # the paired comparison with the label
  max_cost_usd: null          # budget for one check's new model calls (null: none)
judge: {name: gpt-4o-mini, temperature: 0}
pricing:
  gpt-4o-mini: {input: 0.15, output: 0.60}
"""


@dataclass(frozen=True)
class GateConfig:
    label: str = "production"
    concurrency: int = 16
    timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 0.5
    max_retry_wait_s: float = 30.0
    allow_missing_suites: bool = False
    compare: CompareSettings = field(default_factory=CompareSettings)
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class Webhook:
    url: str
    events: tuple[str, ...]
    secret_env: str | None = None


@dataclass(frozen=True)
class Config:
    """The effective configuration of a project, with paths resolved against its root."""

    root: Path
    registry: str = DEFAULT_REGISTRY
    prompts: Path = Path("prompts")
    evals: Path = Path("evals")
    protected_labels: tuple[str, ...] = ("production",)
    gate: GateConfig = field(default_factory=GateConfig)
    judge: dict[str, Any] = field(default_factory=lambda: {"name": "gpt-4o-mini", "temperature": 0})
    pricing: dict[str, dict[str, float]] = field(default_factory=dict)
    webhooks: tuple[Webhook, ...] = ()
    path: Path | None = None


_TOP = {"registry", "prompts", "evals", "protected_labels", "webhooks", "gate", "judge", "pricing"}
_GATE = {
    "label",
    "concurrency",
    "timeout_s",
    "retries",
    "backoff_s",
    "max_retry_wait_s",
    "allow_missing_suites",
    "compare",
    "max_cost_usd",
}


def _type(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{where}: must be {what}, not {value!r}")
    return value


def _budget(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where}: must be a number of USD (0 or more) or null, not {value!r}")
    return float(value)


def parse_config(data: Any, root: Path, where: str) -> Config:
    """Validate the parsed file; `where` prefixes every error (file:line)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        allowed = ", ".join(sorted(_TOP))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed})")
    kw: dict[str, Any] = {"root": root}
    if "registry" in data:
        kw["registry"] = _type(f"{where}: registry", data["registry"], str, "a URL")
    for key in ("prompts", "evals"):
        if key in data:
            kw[key] = Path(_type(f"{where}: {key}", data[key], str, "a folder path"))
    if "protected_labels" in data:
        labels = _type(f"{where}: protected_labels", data["protected_labels"], list, "a list")
        kw["protected_labels"] = tuple(
            _type(f"{where}: protected_labels", x, str, "label names") for x in labels
        )
    gate = data.get("gate") or {}
    _type(f"{where}: gate", gate, Mapping, "a mapping")
    unknown = sorted(set(gate) - _GATE)
    if unknown:
        raise ConfigError(f"{where}: gate: unknown key {unknown[0]!r}")
    g = GateConfig()
    kw["gate"] = GateConfig(
        label=_type(f"{where}: gate.label", gate.get("label", g.label), str, "a label"),
        concurrency=_type(
            f"{where}: gate.concurrency",
            gate.get("concurrency", g.concurrency),
            int,
            "a whole number",
        ),
        timeout_s=float(
            _type(
                f"{where}: gate.timeout_s",
                gate.get("timeout_s", g.timeout_s),
                (int, float),
                "seconds",
            )
        ),
        retries=_type(
            f"{where}: gate.retries", gate.get("retries", g.retries), int, "a whole number"
        ),
        backoff_s=float(
            _type(
                f"{where}: gate.backoff_s",
                gate.get("backoff_s", g.backoff_s),
                (int, float),
                "seconds",
            )
        ),
        max_retry_wait_s=float(
            _type(
                f"{where}: gate.max_retry_wait_s",
                gate.get("max_retry_wait_s", g.max_retry_wait_s),
                (int, float),
                "seconds",
            )
        ),
        allow_missing_suites=_type(
            f"{where}: gate.allow_missing_suites",
            gate.get("allow_missing_suites", g.allow_missing_suites),
            bool,
            "true or false",
        ),
        compare=CompareSettings().with_overrides(
            parse_compare(gate.get("compare"), f"{where}: gate.compare", ConfigError)
        ),
        max_cost_usd=_budget(f"{where}: gate.max_cost_usd", gate.get("max_cost_usd")),
    )
    if kw["gate"].concurrency < 1:
        raise ConfigError(f"{where}: gate.concurrency must be at least 1")
    if "judge" in data:
        judge = _type(f"{where}: judge", data["judge"], Mapping, "a model mapping with `name`")
        _type(f"{where}: judge.name", judge.get("name"), str, "a model name")
        kw["judge"] = dict(judge)
    if "pricing" in data:
        pricing = _type(f"{where}: pricing", data["pricing"] or {}, Mapping, "a mapping")
        out: dict[str, dict[str, float]] = {}
        for model, prices in pricing.items():
            _type(f"{where}: pricing.{model}", prices, Mapping, "{input, output}")
            if set(prices) - {"input", "output"}:
                raise ConfigError(f"{where}: pricing.{model}: keys are input and output")
            out[str(model)] = {
                k: float(
                    _type(
                        f"{where}: pricing.{model}.{k}", v, (int, float), "USD per million tokens"
                    )
                )
                for k, v in prices.items()
            }
        kw["pricing"] = out
    if "webhooks" in data:
        hooks = []
        for i, hook in enumerate(
            _type(f"{where}: webhooks", data["webhooks"] or [], list, "a list")
        ):
            _type(f"{where}: webhooks[{i}]", hook, Mapping, "{url, events, secret_env}")
            if set(hook) - {"url", "events", "secret_env"}:
                raise ConfigError(f"{where}: webhooks[{i}]: keys are url, events, secret_env")
            events = tuple(hook.get("events") or ("request", "decision", "move"))
            hooks.append(
                Webhook(
                    url=_type(f"{where}: webhooks[{i}].url", hook.get("url"), str, "a URL"),
                    events=events,
                    secret_env=hook.get("secret_env"),
                )
            )
        kw["webhooks"] = tuple(hooks)
    return Config(**kw)


def find_config(start: Path | None = None) -> Path | None:
    """The promptgate.yaml in `start` (default: the working directory), if any."""
    candidate = (start or Path.cwd()) / CONFIG_FILE
    return candidate if candidate.is_file() else None


def load_config(path: Path | None = None) -> Config:
    """Load the project's config, or built-in defaults when there is no file."""
    path = path or find_config()
    if path is None:
        return Config(root=Path.cwd())
    try:
        doc = load_yaml_file(path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return parse_config(doc.data, path.parent, str(path))


def resolve_registry(flag: str | None, config: Config) -> str:
    """--registry, else PROMPTGATE_REGISTRY, else the config's; sqlite paths are made absolute
    against the project root so a command works from any folder of it."""
    url = flag or os.environ.get("PROMPTGATE_REGISTRY") or config.registry
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url[len("sqlite:///") :])
        if not path.is_absolute() and not flag and not os.environ.get("PROMPTGATE_REGISTRY"):
            path = config.root / path
        url = f"sqlite:///{path}"
    return url
