"""The subset of Drive's files.list `q` language the emulator understands.

Terms: `'<id>' in parents`, `trashed = true|false`, `mimeType = | != '<type>'`,
`name = | != | contains '<text>'` (word-prefix match, as Drive does), `modifiedTime > | >= | < | <= | = '<RFC3339>'`,
combined with `and`, `or`, `not` and parentheses.
Anything else is a 400 "Invalid Value" on `q`, like Google answers a malformed query.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable

from pipeline.emulator.model import DriveFile
from pipeline.emulator.resources import rfc3339

Predicate = Callable[[DriveFile], bool]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<paren>[()])
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
    )""",
    re.X,
)


class QueryError(ValueError):
    pass


def _tokens(q: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    q = q.rstrip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m or m.end() == pos:
            raise QueryError(f"bad query at {pos}")
        kind = m.lastgroup or ""
        val = m.group(kind)
        if kind == "str":
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        out.append((kind, val))
        pos = m.end()
    return out


def parse(q: str) -> Predicate:
    toks = _tokens(q)
    pos = 0

    def peek(kind: str, val: str | None = None) -> bool:
        if pos < len(toks) and toks[pos][0] == kind:
            return val is None or toks[pos][1].lower() == val
        return False

    def take(kind: str, val: str | None = None) -> str:
        nonlocal pos
        if not peek(kind, val):
            raise QueryError("bad query")
        pos += 1
        return toks[pos - 1][1]

    def chain(word: str, operand: Callable[[], Predicate], join: Callable[[Iterable[bool]], bool]) -> Predicate:
        """`operand (word operand)*`: `or` chains join with any(), `and` chains with all() (both short-circuit)."""
        parts = [operand()]
        while peek("word", word):
            take("word")
            parts.append(operand())
        return parts[0] if len(parts) == 1 else lambda f: join(p(f) for p in parts)

    def expr() -> Predicate:
        return chain("or", conj, any)

    def conj() -> Predicate:
        return chain("and", unary, all)

    def unary() -> Predicate:
        if peek("word", "not"):
            take("word")
            inner = unary()
            return lambda f: not inner(f)
        if peek("paren", "("):
            take("paren")
            inner = expr()
            take("paren", ")")
            return inner
        return term()

    def term() -> Predicate:
        if peek("str"):
            value = take("str")
            take("word", "in")
            coll = take("word")
            if coll == "parents":
                return lambda f: value in f.parents
            raise QueryError(f"unsupported collection {coll}")
        name = take("word")
        if name == "name" and peek("word", "contains"):
            take("word")
            # Drive matches `name contains` as a prefix of the name's words, not any substring
            # ('Hello' finds "HelloWorld", 'World' does not).
            word = re.compile(r"(?<![0-9a-z])" + re.escape(take("str").lower()))
            return lambda f: word.search(f.name.lower()) is not None
        op = take("op")
        if name == "trashed":
            lit = take("word").lower()
            if lit not in ("true", "false") or op not in ("=", "!="):
                raise QueryError("bad trashed term")
            want = lit == "true"
            return (lambda f: f.trashed == want) if op == "=" else (lambda f: f.trashed != want)
        if name in ("mimeType", "name", "modifiedTime", "createdTime"):
            return _compare(name, op, take("str"))
        raise QueryError(f"unsupported field {name}")

    result = expr()
    if pos != len(toks):
        raise QueryError("trailing tokens in query")
    return result


_OPS: dict[str, Callable[[str, str], bool]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def _compare(name: str, op: str, value: str) -> Predicate:
    if name in ("mimeType", "name") and op not in ("=", "!="):
        raise QueryError("bad operator")
    cmp = _OPS[op]
    if name.endswith("Time"):
        # Compare times textually in Drive's one shape: 2024-01-02T03:04:05.000Z
        value = rfc3339(value)
        return lambda f: cmp(rfc3339(getattr(f, name)), value)
    return lambda f: cmp(getattr(f, name), value)
