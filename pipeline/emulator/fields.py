"""Google's `fields` partial-response syntax: parse it and trim a response to it.

Grammar (as Google documents it): a comma-separated list of selectors; `a/b` selects b inside
a; `a(b,c)` selects b and c inside a (for arrays: inside every element); `*` selects all.
"""

from __future__ import annotations

from typing import Any

# A selection tree: field name -> sub-selection (None = the whole value).
Selection = dict[str, Any]


class FieldsError(ValueError):
    pass


def parse(text: str) -> Selection:
    pos = 0
    text = text.strip()

    def parse_list(stop: str | None) -> Selection:
        nonlocal pos
        sel: Selection = {}
        while True:
            # one selector: name(/name)* optionally followed by (sub-list)
            path: list[str] = []
            while True:
                start = pos
                while pos < len(text) and (text[pos].isalnum() or text[pos] in "_*.-"):
                    pos += 1
                name = text[start:pos]
                if not name:
                    raise FieldsError(f"bad fields selector at {start}")
                path.append(name)
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if pos < len(text) and text[pos] == "/":
                    pos += 1
                    continue
                break
            sub: Selection | None = None
            if pos < len(text) and text[pos] == "(":
                pos += 1
                sub = parse_list(")")
                if pos >= len(text) or text[pos] != ")":
                    raise FieldsError("unbalanced parentheses in fields")
                pos += 1
            _union(sel, _nest(path, sub))
            while pos < len(text) and text[pos] == " ":
                pos += 1
            if pos < len(text) and text[pos] == ",":
                pos += 1
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                continue
            break
        if stop is None and pos != len(text):
            raise FieldsError(f"unexpected {text[pos]!r} in fields")
        return sel

    return parse_list(None)


def _nest(path: list[str], sub: Selection | None) -> Selection:
    out: Selection | None = sub
    for name in reversed(path):
        out = {name: out}
    return out  # type: ignore[return-value]


def _union(a: Selection, b: Selection) -> None:
    for k, v in b.items():
        if k not in a:
            a[k] = v
        elif a[k] is None or v is None:
            a[k] = None
        else:
            _union(a[k], v)


def apply(value: Any, sel: Selection | None) -> Any:
    """Trim `value` to `sel`; lists apply the selection to each element."""
    if sel is None:
        return value
    if isinstance(value, list):
        return [apply(v, sel) for v in value]
    if not isinstance(value, dict):
        return value
    if "*" in sel:
        out = dict(value)
        for k, v in sel.items():
            if k != "*" and k in out:
                out[k] = apply(out[k], v)
        return out
    out = {}
    for k, v in sel.items():
        if k in value:
            out[k] = apply(value[k], v)
    return out


def unknown_fields(sel: Selection, known: dict[str, Any]) -> str | None:
    """The first selected top-level name the resource does not have (Google answers 400 for those)."""
    for k, v in sel.items():
        if k == "*":
            continue
        if k not in known:
            return k
        if v is not None and isinstance(known[k], dict):
            bad = unknown_fields(v, known[k])
            if bad:
                return f"{k}.{bad}"
    return None
