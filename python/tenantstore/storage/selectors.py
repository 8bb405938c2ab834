"""Label and field selectors with the Kubernetes syntax, and the selection predicate.

Selectors filter after the key range is read (as in Kubernetes), so they never widen
what a caller can see: they only drop items. Parse errors are `BadRequestError`s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequestError

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(rf"^{_NAME}$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_INTEGER_RE = re.compile(r"^-?[0-9]{1,18}$")

OPS = ("=", "==", "!=", "in", "notin", "exists", "!", ">", "<")


def _check_key(key: str) -> None:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        raise BadRequestError(f'invalid label key "{key}": prefix must be a DNS-1123 subdomain')
    if not name or len(name) > 63 or not _NAME_RE.match(name):
        raise BadRequestError(
            f'invalid label key "{key}": name part must be 63 characters or less, consist '
            "of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
        )


def _check_value(value: str) -> None:
    if value and (len(value) > 63 or not _NAME_RE.match(value)):
        raise BadRequestError(
            f'invalid label value "{value}": must be 63 characters or less, consist of '
            "alphanumerics, '-', '_' or '.', and start and end with an alphanumeric"
        )


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        # Total over any stored object: a label value that is not a string (objects are
        # client input) matches no value, and never raises. One tenant's odd object must
        # not be able to break the dispatch of a cache every tenant shares.
        value = labels[self.key] if present else None
        if self.op in ("=", "==", "in"):
            return isinstance(value, str) and value in self.values
        if self.op in ("!=", "notin"):
            return not isinstance(value, str) or value not in self.values
        if not isinstance(value, str) or _INTEGER_RE.match(value) is None:
            return False
        have, want = int(value), int(self.values[0])
        return have > want if self.op == ">" else have < want


_TOKEN_RE = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s(),!=<>]+)")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.end() == pos:
            raise BadRequestError(f'unable to parse label selector "{text}" at {pos}')
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if not isinstance(labels, Mapping):
            labels = {}
        return all(r.matches(labels) for r in self.requirements)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        if len(text) > 16384:
            raise BadRequestError("label selector is too long")
        tokens = _tokenize(text)
        reqs: list[Requirement] = []
        i = 0

        def need(cond: bool, what: str) -> None:
            if not cond:
                raise BadRequestError(f'unable to parse label selector "{text}": {what}')

        while i < len(tokens):
            if tokens[i] == "!":
                need(i + 1 < len(tokens), "expected a key after '!'")
                key = tokens[i + 1]
                _check_key(key)
                reqs.append(Requirement(key, "!"))
                i += 2
            else:
                key = tokens[i]
                need(key not in ("(", ")", ",", "=", "==", "!=", ">", "<"), f"unexpected {key!r}")
                _check_key(key)
                i += 1
                if i >= len(tokens) or tokens[i] == ",":
                    reqs.append(Requirement(key, "exists"))
                elif tokens[i] in ("=", "==", "!="):
                    op = tokens[i]
                    i += 1
                    value = ""
                    if i < len(tokens) and tokens[i] not in (",", "(", ")"):
                        value = tokens[i]
                        i += 1
                    need(value not in ("=", "==", "!=", "!", ">", "<"), "invalid value")
                    _check_value(value)
                    reqs.append(Requirement(key, op, (value,)))
                elif tokens[i] in (">", "<"):
                    op = tokens[i]
                    need(i + 1 < len(tokens), "expected an integer")
                    value = tokens[i + 1]
                    need(_INTEGER_RE.match(value) is not None, f"{value!r} is not an integer")
                    reqs.append(Requirement(key, op, (value,)))
                    i += 2
                elif tokens[i] in ("in", "notin"):
                    op = tokens[i]
                    i += 1
                    need(i < len(tokens) and tokens[i] == "(", "expected '('")
                    i += 1
                    values: list[str] = []
                    expect_value = True
                    while True:
                        need(i < len(tokens), "expected ')'")
                        tok = tokens[i]
                        i += 1
                        if tok == ")":
                            if expect_value and values:
                                values.append("")
                            break
                        if tok == ",":
                            if expect_value:
                                values.append("")
                            expect_value = True
                            continue
                        need(expect_value and tok not in ("(", "!", "=", "==", "!="), "bad value")
                        _check_value(tok)
                        values.append(tok)
                        expect_value = False
                    need(bool(values), "a set needs at least one value")
                    reqs.append(Requirement(key, op, tuple(values)))
                else:
                    need(False, f"unexpected {tokens[i]!r} after key {key!r}")
            if i < len(tokens):
                need(tokens[i] == ",", f"expected ',' but found {tokens[i]!r}")
                i += 1
                need(i < len(tokens), "trailing ','")
        return cls(tuple(reqs))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\,=!":
                raise BadRequestError(f'invalid escape sequence in field selector "{text}"')
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


#: Where a selectable field's value is read: paths into the object, tried in turn; the
#: value is the first that holds a non-empty string, else "" (absent, `null`, a number:
#: all select as ""). Upstream's fields are typed Go strings; a path is how the same
#: field is found in the JSON both here and in the Rust byte cache (`objects.rs`).
FieldPaths = tuple[tuple[str, ...], ...]

DEFAULT_FIELDS: Mapping[str, FieldPaths] = {
    "metadata.name": (("metadata", "name"),),
    "metadata.namespace": (("metadata", "namespace"),),
}


def field_value(obj: Mapping[str, Any], paths: FieldPaths) -> str:
    """The value a field selector compares (see `FieldPaths`)."""
    for path in paths:
        cur: Any = obj
        for step in path:
            cur = cur.get(step) if isinstance(cur, Mapping) else None
        if isinstance(cur, str) and cur:
            return cur
    return ""


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str
    paths: FieldPaths = ()

    def __post_init__(self) -> None:
        if not self.paths:
            # A requirement built by hand on a default field: read where that field lives.
            object.__setattr__(self, "paths", DEFAULT_FIELDS.get(self.field, ()))


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """Equality terms on the fields a resource declares selectable (`DEFAULT_FIELDS`
    unless the caller passes its own: events select on `involvedObject.name`, ...)."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for req in self.requirements:
            have = field_value(obj, req.paths)
            if (have == req.value) != (req.op == "="):
                return False
        return True

    @classmethod
    def parse(cls, text: str, fields: Mapping[str, FieldPaths] = DEFAULT_FIELDS) -> FieldSelector:
        if len(text) > 16384:
            raise BadRequestError("field selector is too long")
        reqs: list[FieldRequirement] = []
        if not text.strip():
            return cls()
        for term in _split_unescaped(text, ","):
            term = term.strip()
            for raw_op in ("!=", "==", "="):
                idx = _find_unescaped(term, raw_op)
                if idx >= 0:
                    name = _unescape(term[:idx]).strip()
                    value = _unescape(term[idx + len(raw_op) :])
                    op = "!=" if raw_op == "!=" else "="
                    break
            else:
                raise BadRequestError(f'invalid field selector "{text}": "{term}" has no operator')
            paths = fields.get(name)
            if paths is None:
                raise BadRequestError(f'field label not supported: "{name}"')
            reqs.append(FieldRequirement(name, op, value, paths))
        return cls(tuple(reqs))


def _find_unescaped(text: str, op: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(op, i):
            # "=" must not match the first half of "==" or the second half of "!="
            if op == "=" and (text.startswith("==", i) or (i > 0 and text[i - 1] == "!")):
                i += 1
                continue
            return i
        i += 1
    return -1


@dataclass(frozen=True, slots=True)
class Predicate:
    """What a list or watch selects: labels and fields, both filters after the key range."""

    label: LabelSelector = field(default_factory=LabelSelector)
    field: FieldSelector = field(default_factory=FieldSelector)

    @property
    def empty(self) -> bool:
        return self.label.empty and self.field.empty

    def matches(self, obj: Mapping[str, Any]) -> bool:
        if self.empty:
            return True
        meta = obj.get("metadata")
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        return self.label.matches(labels) and self.field.matches(obj)

    @classmethod
    def parse(
        cls,
        label_selector: str = "",
        field_selector: str = "",
        fields: Mapping[str, FieldPaths] = DEFAULT_FIELDS,
    ) -> Predicate:
        """`fields`: the selectable fields of the resource listed (a field outside them is
        a 400 `field label not supported`, as upstream's per-resource field sets)."""
        return cls(LabelSelector.parse(label_selector), FieldSelector.parse(field_selector, fields))


EVERYTHING = Predicate()
