"""Strict, bounded YAML loading that remembers where each key was written.

Every YAML file promptgate reads goes through here. Validation errors must name the file, the
field and the line; PyYAML's safe loader forgets the line once it has built plain dicts, so this
loader keeps a side table of key paths to lines.

Loading is bounded so that a hostile or broken file is one line of error, never a traceback,
a hang or exhausted memory (see README "Limits"):

- the text is capped before it is parsed (`max_bytes`);
- nodes are composed here, iteratively, from the parser's events (libyaml's C parser when it
  is installed, PyYAML's pure-Python one otherwise), so nesting deeper than `MAX_DEPTH` is
  refused before anything recursive runs;
- aliases are counted as what they expand to: a document whose nodes, aliases expanded, pass
  `MAX_NODES` (a "billion laughs") is refused, and so is an alias inside its own anchor;
- mapping keys must be scalars (`? [a, b]: c` is refused), and duplicate keys are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from .limits import MAX_PROMPT_FILE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

KeyPath = tuple[str | int, ...]

MAX_DEPTH = MAX_YAML_DEPTH
MAX_NODES = MAX_YAML_NODES
MAX_YAML_BYTES = MAX_PROMPT_FILE_BYTES  # the default cap on a YAML text

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(yaml.MarkedYAMLError):
    """A document refused by a bound (depth, alias expansion, complex key), not by the syntax."""


@dataclass
class Located:
    """Parsed YAML plus the 1-based line of every mapping key and sequence item."""

    data: Any
    path: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, key: KeyPath) -> int | None:
        """The line of `key`, or of its nearest ancestor that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def where(self, key: KeyPath) -> str:
        """`file:line` for error messages."""
        line = self.line(key)
        return f"{self.path}:{line}" if line else self.path


_STR = "tag:yaml.org,2002:str"
_COLLECTION_TAGS = {None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}
_PENDING = object()


@dataclass
class _Open:
    """A collection being built: its value, key path and anchor, and a mapping's pending key."""

    value: list[Any] | dict[Any, Any]
    path: KeyPath
    anchor: str | None
    size: int = 1  # nodes under it so far, aliases expanded
    key: Any = _PENDING
    key_text: str = ""


@dataclass(frozen=True)
class _Anchor:
    value: Any
    size: int
    text: str | None  # a scalar's source text (a key path names keys by it)


def _limit(problem: str, mark: Any) -> YamlLimitError:
    return YamlLimitError(None, None, problem, mark)


def _build(
    loader: Any, lines: dict[KeyPath, int], max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES
) -> Any:
    """The single document of `loader`'s event stream as Python data, filling `lines`.

    Built iteratively from parser events, so depth costs no Python stack and is checked when a
    collection opens; an alias adds the size of what it expands to (known when its anchor
    closed), so the expansion budget is checked in O(events). Scalars are constructed by the
    loader's own constructors (the safe schema); collections are plain lists and dicts."""
    get = loader.get_event
    get()  # StreamStart
    if loader.check_event(yaml.StreamEndEvent):
        get()
        return None
    get()  # DocumentStart
    constructors = loader.yaml_constructors
    anchors: dict[str, _Anchor] = {}
    opened: set[str] = set()
    stack: list[_Open] = []
    total = 0
    while True:
        event = get()
        kind = type(event)
        mark = event.start_mark
        parent = stack[-1] if stack else None
        text: str | None = None
        if kind is yaml.AliasEvent:
            name = event.anchor
            if name in opened:
                raise _limit(f"recursive alias *{name} (an alias inside its own anchor)", mark)
            if name not in anchors:
                raise ComposerError(None, None, f"found undefined alias {name!r}", mark)
            found = anchors[name]
            value, size, text = found.value, found.size, found.text
            total += size
        elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
            done = stack.pop()
            parent = stack[-1] if stack else None
            value, size = done.value, done.size
            if isinstance(value, dict) and done.key is not _PENDING:
                raise ComposerError(None, None, "a mapping key has no value", mark)
            if done.anchor is not None:
                opened.discard(done.anchor)
                anchors[done.anchor] = _Anchor(value, size, None)
            if parent is None:
                break
            parent.size += size
            if isinstance(parent.value, dict):
                parent.value[parent.key] = value
                parent.key = _PENDING
            else:
                parent.value.append(value)
            continue
        else:
            anchor = event.anchor
            if anchor is not None and (anchor in anchors or anchor in opened):
                raise ComposerError(None, None, f"found duplicate anchor {anchor!r}", mark)
            total += 1
            size = 1
            if kind is yaml.ScalarEvent:
                text = event.value
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(yaml.ScalarNode, text, event.implicit)
                if tag == _STR:
                    value = text
                else:
                    constructor = constructors.get(tag)
                    if constructor is None:
                        raise ConstructorError(
                            None,
                            None,
                            f"could not determine a constructor for the tag {tag!r}",
                            mark,
                        )
                    value = constructor(
                        loader, yaml.ScalarNode(tag, text, mark, event.end_mark, style=event.style)
                    )
                if anchor is not None:
                    anchors[anchor] = _Anchor(value, 1, text)
            else:  # a collection opens
                if len(stack) >= max_depth:
                    raise _limit(f"nested deeper than {max_depth} levels", mark)
                if event.tag not in _COLLECTION_TAGS:
                    raise ConstructorError(None, None, f"unsupported tag {event.tag!r}", mark)
                if parent is None:
                    path: KeyPath = ()
                elif isinstance(parent.value, dict):
                    if parent.key is _PENDING:
                        raise _limit(
                            "mapping keys must be plain values, not a list or mapping", mark
                        )
                    path = (*parent.path, parent.key_text)
                else:
                    path = (*parent.path, len(parent.value))
                    lines[path] = mark.line + 1
                if anchor is not None:
                    opened.add(anchor)
                stack.append(_Open([] if kind is yaml.SequenceStartEvent else {}, path, anchor))
                if total > max_nodes:
                    raise _limit(f"more than {max_nodes:,} nodes", mark)
                continue
        # a scalar or an alias: the document itself, an item, a key or a value
        if total > max_nodes:
            raise _limit(f"more than {max_nodes:,} nodes with aliases expanded (alias bomb?)", mark)
        if parent is None:
            break
        parent.size += size
        if isinstance(parent.value, list):
            lines[parent.path + (len(parent.value),)] = mark.line + 1
            parent.value.append(value)
        elif parent.key is _PENDING:
            if text is None:
                raise _limit("mapping keys must be plain values, not a list or mapping", mark)
            try:
                duplicate = value in parent.value
            except TypeError:
                raise _limit("mapping keys must be plain values", mark) from None
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {value!r}", mark)
            parent.key, parent.key_text = value, text
            lines[parent.path + (text,)] = mark.line + 1
        else:
            parent.value[parent.key] = value
            parent.key = _PENDING
    get()  # DocumentEnd
    if not loader.check_event(yaml.StreamEndEvent):
        raise ComposerError(
            None, None, "expected a single document, but found another", get().start_mark
        )
    get()
    return value


def check_bounds(
    text: str,
    loader_class: Any = _BaseLoader,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> None:
    """Raise YamlLimitError if `text` nests deeper than `max_depth` or its aliases expand past
    `max_nodes` (or recurse), building no values: for loaders with their own constructors (the
    assertions' js-yaml-like reader), which then load the text as usual."""
    loader = loader_class(text)
    sizes: dict[str, int] = {}
    stack: list[list[Any]] = []  # [anchor, size] of each open collection
    total = 0
    try:
        while not loader.check_event(yaml.StreamEndEvent):
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                if len(stack) >= max_depth:
                    raise _limit(f"nested deeper than {max_depth} levels", event.start_mark)
                stack.append([event.anchor, 1])
                total += 1
                continue
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                anchor, size = stack.pop()
                if anchor is not None:
                    sizes[anchor] = size
            elif kind is yaml.AliasEvent:
                if any(frame[0] == event.anchor for frame in stack):
                    raise _limit(f"recursive alias *{event.anchor}", event.start_mark)
                size = sizes.get(event.anchor, 1)
                total += size
            elif kind is yaml.ScalarEvent:
                size = 1
                total += 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            else:
                continue
            if total > max_nodes:
                raise _limit(
                    f"more than {max_nodes:,} nodes with aliases expanded", event.start_mark
                )
            if stack:
                stack[-1][1] += size
    finally:
        loader.dispose()


def parse_yaml(text: str, path: str, max_bytes: int = MAX_YAML_BYTES) -> Located:
    """Parse `text`; any problem becomes ValueError('path:line: problem'), one line."""
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > max_bytes else len(text)
    if size > max_bytes:
        raise ValueError(f"{path}: file is {size:,} bytes; the limit is {max_bytes:,}")
    lines: dict[KeyPath, int] = {}
    loader = _BaseLoader(text)
    try:
        data = _build(loader, lines)
    except YamlLimitError as exc:
        raise ValueError(f"{_where(path, exc)}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{_where(path, exc)}: invalid YAML: {problem}") from None
    except (RecursionError, MemoryError) as exc:  # a backstop: the bounds should come first
        raise ValueError(f"{path}: YAML too large or too deep ({type(exc).__name__})") from None
    finally:
        loader.dispose()
    return Located(data=data, path=path, lines=lines)


def _where(path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{path}:{mark.line + 1}" if mark is not None else path


def load_yaml_file(path: Path, max_bytes: int = MAX_YAML_BYTES) -> Located:
    """Read and parse a YAML file of at most `max_bytes`; problems raise ValueError naming it."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{path}: file is {size:,} bytes; the limit is {max_bytes:,}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_yaml(text, str(path), max_bytes)
