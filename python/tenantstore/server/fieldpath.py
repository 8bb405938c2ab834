"""Sets of field paths and their `FieldsV1` encoding, as `managedFields` records them.

A path is a sequence of elements, each written as `managedFields` writes it: `f:<name>`
(a field of an object), `k:<json>` (an item of an associative list, by its key fields as
a JSON object with sorted keys), `v:<json>` (an item of a set, by its value) or `i:<n>`
(an index, for lists nothing else identifies). A `FieldSet` is a tree of such elements
whose nodes are *members* (the path is in the set) or only lead to members; `FieldsV1`
writes a member without children as `{}` and one with children with a `"."` entry, so
the encoding is the tree itself. The set algebra (union, difference, intersection) is
structured-merge-diff's (`fieldpath.Set`), over the encoded elements, since comparing two
encodings of one key is comparing the keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["FieldSet", "FieldsV1Error", "element_text", "key_element", "path_text", "value_element"]


class FieldsV1Error(ValueError):
    """A `fieldsV1` document that is not a field set."""


def key_element(key: dict[str, Any]) -> str:
    return "k:" + orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()


def value_element(value: Any) -> str:
    return "v:" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def element_text(element: str) -> str:
    """One element as `fieldpath.Path.String()` prints it: `.name`, `[k="v",...]`,
    `[="value"]`, `[3]`."""
    kind, body = element[:2], element[2:]
    if kind == "f:":
        return "." + body
    if kind == "k:":
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            return f"[{body}]"
        if isinstance(fields, dict):
            shown = ",".join(f"{k}={orjson.dumps(v).decode()}" for k, v in sorted(fields.items()))
            return f"[{shown}]"
        return f"[{body}]"
    if kind == "v:":
        return f"[={body}]"
    if kind == "i:":
        return f"[{body}]"
    return element


def path_text(path: tuple[str, ...]) -> str:
    return "".join(element_text(e) for e in path)


class FieldSet:
    """A set of paths as a tree: `members` are the elements that end a path in the set
    here, `children` the subtrees below an element (which need not be a member)."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.children: dict[str, FieldSet] = {}

    # -- construction --------------------------------------------------------------
    def insert(self, path: tuple[str, ...]) -> None:
        node = self
        for element in path[:-1]:
            node = node.child(element)
        node.members.add(path[-1])

    def child(self, element: str) -> FieldSet:
        """The subtree below `element`, created when missing."""
        node = self.children.get(element)
        if node is None:
            node = self.children[element] = FieldSet()
        return node

    def copy(self) -> FieldSet:
        out = FieldSet()
        out.members = set(self.members)
        out.children = {e: c.copy() for e, c in self.children.items()}
        return out

    # -- queries -------------------------------------------------------------------
    def empty(self) -> bool:
        return not self.members and all(c.empty() for c in self.children.values())

    def has(self, path: tuple[str, ...]) -> bool:
        node: FieldSet | None = self
        for element in path[:-1]:
            node = node.children.get(element) if node is not None else None
        return node is not None and path[-1] in node.members

    def paths(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        """Every member path, each before the paths below it, in element order."""
        for element in sorted(self.members | set(self.children)):
            path = (*prefix, element)
            if element in self.members:
                yield path
            sub = self.children.get(element)
            if sub is not None:
                yield from sub.paths(path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and self.to_fields_v1() == other.to_fields_v1()

    def __repr__(self) -> str:
        return f"FieldSet({self.to_fields_v1()!r})"

    __hash__ = None  # type: ignore[assignment]

    # -- algebra -------------------------------------------------------------------
    def union(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members | other.members
        for element in self.children.keys() | other.children.keys():
            a, b = self.children.get(element), other.children.get(element)
            if a is None:
                assert b is not None
                out.children[element] = b.copy()
            elif b is None:
                out.children[element] = a.copy()
            else:
                out.children[element] = a.union(b)
        return out

    def difference(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members - other.members
        for element, a in self.children.items():
            b = other.children.get(element)
            sub = a.copy() if b is None else a.difference(b)
            if not sub.empty():
                out.children[element] = sub
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members & other.members
        for element, a in self.children.items():
            b = other.children.get(element)
            if b is not None:
                sub = a.intersection(b)
                if not sub.empty():
                    out.children[element] = sub
        return out

    def without(self, element: str) -> FieldSet:
        """This set less `element` and everything below it (one level, in place)."""
        self.members.discard(element)
        self.children.pop(element, None)
        return self

    # -- FieldsV1 ------------------------------------------------------------------
    def to_fields_v1(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for element in sorted(self.members | set(self.children)):
            sub = self.children.get(element)
            encoded = sub.to_fields_v1() if sub is not None else {}
            if encoded and element in self.members:
                encoded = {".": {}, **encoded}
            if encoded or element in self.members:
                out[element] = encoded
        return out

    @classmethod
    def from_fields_v1(cls, doc: Any) -> FieldSet:
        """The set `doc` encodes; `FieldsV1Error` for anything else."""
        if not isinstance(doc, dict):
            raise FieldsV1Error("fieldsV1 must be an object")
        out = cls()
        for element, sub in doc.items():
            if element == ".":
                continue
            if not isinstance(element, str) or element[:2] not in ("f:", "k:", "v:", "i:"):
                raise FieldsV1Error(f"invalid path element {element!r}")
            if not isinstance(sub, dict):
                raise FieldsV1Error(f"the value of {element!r} must be an object")
            if not sub or "." in sub:
                out.members.add(element)
            if any(k != "." for k in sub):
                out.children[element] = cls.from_fields_v1(sub)
        return out
