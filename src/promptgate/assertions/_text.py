"""Text helpers: promptfoo's comma-separated values of the -any / -all assertions
(`parseCommaSeparatedValues`) and the Levenshtein distance in UTF-16 code units
(as fastest-levenshtein counts).
"""

from __future__ import annotations

from functools import lru_cache

from ._js import _JS_SPACE, _utf16_units


@lru_cache(maxsize=1024)
def _parse_csv_values(value: str) -> tuple[str, ...]:
    """Split `a, "b, c", d` into fields; quotes protect commas, `\\"` `\\\\` `""` escape."""
    out: list[str] = []
    i, n = 0, len(value)

    def skip_space(k: int) -> int:
        while k < n and value[k] in _JS_SPACE:
            k += 1
        return k

    while i < n:
        while i < n:  # whitespace and separators (repeated commas yield no empty field)
            i = skip_space(i)
            if i < n and value[i] == ",":
                i += 1
                continue
            break
        if i >= n:
            break
        if value[i] == '"':
            i += 1
            field: list[str] = []
            terminated = False
            while i < n:
                ch = value[i]
                if ch == "\\" and i + 1 < n and value[i + 1] in ('"', "\\"):
                    field.append(value[i + 1])
                    i += 2
                elif ch == '"' and i + 1 < n and value[i + 1] == '"':
                    field.append('"')
                    i += 2
                elif ch == '"':
                    i += 1
                    terminated = True
                    break
                else:
                    field.append(ch)
                    i += 1
            if not terminated:
                raise ValueError("Unterminated quoted field in contains assertion value")
            out.append("".join(field))
            i = skip_space(i)
            if i < n and value[i] != ",":
                raise ValueError("Expected comma after quoted field in contains assertion value")
        else:
            j = value.find(",", i)
            j = n if j < 0 else j
            out.append(value[i:j].strip(_JS_SPACE))
            i = j
    return tuple(out)


def _levenshtein(a: str, b: str) -> int:
    """Edit distance with Myers' bit-parallel algorithm (Python ints as bit vectors)."""
    a, b = _utf16_units(a), _utf16_units(b)
    if a == b:
        return 0
    if len(a) > len(b):
        a, b = b, a  # bit vectors over the longer string, one step per char of the shorter
    if not a:
        return len(b)
    m = len(b)
    peq: dict[str, int] = {}
    for idx, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << idx)
    get = peq.get
    full = (1 << m) - 1
    last = 1 << (m - 1)
    pv, mv, score = full, 0, m
    for ch in a:
        eq = get(ch, 0)
        xv = eq | mv
        xh = ((((eq & pv) + pv) ^ pv) | eq) & full
        ph = mv | (full ^ (xh | pv))
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & full
        pv = ((mh << 1) & full) | (full ^ (xv | ph))
        mv = ph & xv
    return score
