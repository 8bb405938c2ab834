"""Field validation of writes against the resources' schemas (`fieldValidation`).

Kubernetes decodes a write into its schema: fields the schema does not know, and fields
the JSON names twice, are dropped, and `fieldValidation` decides what the client hears of
it: `Strict` fails the request, `Warn` (the default) answers with one `Warning` header
per field, `Ignore` says nothing. Values of the wrong type are a 422 naming the field, in
the words of a CRD's schema validation (`spec.size in body must be of type integer:
"string"`). The same applies here to the built-in kinds (their `openapi_builtin`
schemas) and to custom resources declared with a `schema.openAPIV3Schema`, whose unknown
fields are pruned as a CRD's structural schema prunes them (`x-kubernetes-preserve-
unknown-fields` keeps them); a custom resource without a schema keeps everything but
unknown `metadata` fields. Custom schemas also enforce `required` and `enum`; the
built-ins' Go validation is not reproduced beyond types.

Where the words come from: a create or update that `Strict` refuses is upstream's 400
(`ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error:
unknown field "spec"`), a patch is its 422 on the field `patch`; warnings carry the bare
`unknown field "spec.foo"` / `duplicate field "data.a"`.

Cost on the write path: the schemas are compiled once per server; a write walks the
parts of its object the schema describes (free-form and preserved subtrees are not
entered), and duplicate detection counts the body's members against the parsed object's
(one regular-expression pass over the bytes); only a body whose counts differ is parsed a
second time to name the duplicates.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson
from starlette.requests import Request

from ..codec import MAX_DEPTH
from ..storage.errors import BadRequestError, InvalidError
from .openapi import custom_definitions, definition_name
from .openapi_builtin import DEFINITIONS, META
from .patch import STRATEGIC as STRATEGIC_MERGE
from .registry import Resource, ResourceRegistry
from .validation import decode_json
from .warning_headers import add_warnings

__all__ = ["FieldValidation", "SchemaValidators", "Validator", "field_validation"]

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
_DIRECTIVES = ("", IGNORE, STRICT, WARN)
# The most type errors one response lists (a 3 MiB body could hold a million).
_MAX_ERRORS = 20
_TYPES = ("object", "array", "string", "integer", "number", "boolean")


_Class: TypeAlias = type  # (`Node.type` hides the builtin inside the class body)


@dataclass(slots=True, eq=False)
class Node:
    """One compiled schema: what a value must be and what its children are."""

    type: str | None = None
    properties: dict[str, Node] | None = None
    additional: Node | None = None  # the schema of a map's values
    items: Node | None = None
    preserve: bool = False  # unknown fields are kept (and not reported)
    int_or_string: bool = False
    fmt: str = ""
    required: tuple[str, ...] = ()
    enum: tuple[Any, ...] | None = None
    # The one class a value needs to pass with no further check (plain strings, integers
    # and booleans): the walk's fast path for the leaves that make up most objects.
    simple: _Class | None = None


_ANY = Node(preserve=True)


class _Compiler:
    def __init__(self, definitions: dict[str, Any], *, custom: bool) -> None:
        self.definitions = definitions
        # Custom schemas follow a CRD's structural rules: an object without properties
        # keeps nothing; `required` and `enum` are enforced.
        self.custom = custom
        self.named: dict[str, Node] = {}

    def compile(self, schema: Any) -> Node:
        if not isinstance(schema, dict):
            return _ANY
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._named(ref)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
            return self.compile(all_of[0])
        node = Node()
        kind = schema.get("type")
        node.type = kind if kind in _TYPES else None
        node.int_or_string = schema.get("x-kubernetes-int-or-string") is True
        if node.int_or_string:
            node.type = None
        node.preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        fmt = schema.get("format")
        node.fmt = fmt if isinstance(fmt, str) else ""
        properties = schema.get("properties")
        if isinstance(properties, dict):
            node.properties = {str(k): self.compile(v) for k, v in properties.items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            node.additional = self.compile(extra)
        elif extra is True:
            node.additional = _ANY
        items = schema.get("items")
        if items is not None:
            node.items = self.compile(items)
        if node.type == "object" and node.properties is None and node.additional is None:
            # A free-form object: the built-ins' FieldsV1, RawExtension, Patch.
            node.preserve = node.preserve or not self.custom
        if self.custom:
            required = schema.get("required")
            if isinstance(required, list):
                node.required = tuple(r for r in required if isinstance(r, str))
            enum = schema.get("enum")
            if isinstance(enum, list):
                node.enum = tuple(enum)
        if node.enum is None and not node.fmt and not node.int_or_string:
            node.simple = {"string": str, "integer": int, "boolean": bool}.get(node.type or "")
        untyped = node.type is None and node.properties is None and node.items is None
        if untyped and node.additional is None and not node.enum and not self.custom:
            return _ANY
        return node

    def _named(self, name: str) -> Node:
        node = self.named.get(name)
        if node is None:
            node = Node()  # placeholder while compiling (schemas may refer to themselves)
            self.named[name] = node
            compiled = _Compiler(self.definitions, custom=False)
            compiled.named = self.named
            built = compiled.compile(self.definitions.get(name))
            for slot in Node.__slots__:
                setattr(node, slot, getattr(built, slot))
        return node


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_ok(value: Any, node: Node) -> bool:
    if node.int_or_string:
        return isinstance(value, str | int) and not isinstance(value, bool)
    wanted = node.type
    if wanted is None or value is None:
        return True  # null is the field's zero value, as decoding treats it
    actual = _json_type(value)
    if actual == wanted:
        return True
    if wanted == "number":
        return actual == "integer"
    if wanted == "integer" and isinstance(value, float):
        return value.is_integer()
    return False


def _byte_ok(value: str) -> bool:
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    if len(text) > 256:
        text = text[:256] + "..."
    return json.dumps(text)


def _directive(path: str) -> bool:
    return path.rsplit(".", 1)[-1].startswith("$")


def _go_quote(text: str) -> str:
    """`text` quoted as Go's `%q` quotes a field path (printable characters kept)."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(slots=True)
class _Walk:
    unknown: list[str] = field(default_factory=list)
    errors: list[tuple[str, str, str, Any]] = field(default_factory=list)  # path, reason, msg

    def error(self, path: str, reason: str, message: str, value: Any = None) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append((path, reason, message, value))

    def value(self, value: Any, node: Node, path: str) -> Any:
        """`value` checked against `node`: the same object, or a copy without unknown fields."""
        if not _type_ok(value, node):
            actual = _json_type(value)
            self.error(
                path,
                "FieldValueInvalid",
                f'{path} in body must be of type {node.type or "integer or string"}: "{actual}"',
                actual,
            )
            return value
        if node.enum is not None and value is not None and value not in node.enum:
            supported = ", ".join(_quote(v) for v in node.enum)
            self.error(path, "FieldValueNotSupported", f"supported values: {supported}", value)
        if node.fmt == "byte" and isinstance(value, str) and not _byte_ok(value):
            message = f"{path} in body must be of type byte: {_quote(value)}"
            self.error(path, "FieldValueInvalid", message, value)
        if isinstance(value, dict):
            return self._object(value, node, path)
        if isinstance(value, list) and node.items is not None and node.items is not _ANY:
            return self._array(value, node.items, path)
        return value

    def _object(self, obj: dict[str, Any], node: Node, path: str) -> dict[str, Any]:
        props, extra = node.properties, node.additional
        if props is None and extra is None and node.preserve:
            return obj
        prefix = f"{path}." if path else ""
        dropped: list[str] = []
        replaced: dict[str, Any] = {}
        for key, child_value in obj.items():
            child = props.get(key) if props is not None else None
            if child is None:
                child = extra
            if child is None:
                if not node.preserve:
                    self.unknown.append(prefix + key)
                    dropped.append(key)
                continue
            if child is _ANY or child_value.__class__ is child.simple:
                continue
            checked = self.value(child_value, child, prefix + key)
            if checked is not child_value:
                replaced[key] = checked
        for name in node.required:
            if name not in obj:
                self.error(prefix + name, "FieldValueRequired", "Required value")
        if not dropped and not replaced:
            return obj
        out = {k: v for k, v in obj.items() if k not in dropped}
        out.update(replaced)
        return out

    def _array(self, items: list[Any], node: Node, path: str) -> list[Any]:
        out: list[Any] | None = None
        simple = node.simple
        for i, item in enumerate(items):
            if item.__class__ is simple:
                continue
            checked = self.value(item, node, f"{path}[{i}]")
            if checked is not item:
                if out is None:
                    out = list(items)
                out[i] = checked
        return items if out is None else out


class Validator:
    """One resource's compiled schema."""

    def __init__(self, res: Resource, root: Node) -> None:
        self.res = res
        self.root = root

    def walk(self, obj: dict[str, Any]) -> tuple[dict[str, Any], _Walk]:
        walk = _Walk()
        return walk.value(obj, self.root, ""), walk


class SchemaValidators:
    """The validators of a registry's resources, compiled once per server."""

    def __init__(self, registry: ResourceRegistry) -> None:
        self._by_resource: dict[tuple[str, str, str], Validator] = {}
        for res in registry:
            if res.group:
                definitions = {**DEFINITIONS, **custom_definitions(res)}
                schema = definitions[definition_name(res)]
                root = _Compiler(definitions, custom=True).compile(schema)
                if res.schema is None:
                    # No schema: everything is kept but metadata, which is ObjectMeta.
                    root = Node(
                        type="object",
                        preserve=True,
                        properties={
                            "metadata": _Compiler(DEFINITIONS, custom=False)._named(
                                META + "ObjectMeta"
                            )
                        },
                    )
            else:
                root = _Compiler(DEFINITIONS, custom=False)._named(definition_name(res))
            self._by_resource[(res.group, res.version, res.plural)] = Validator(res, root)

    def of(self, res: Resource) -> Validator | None:
        return self._by_resource.get((res.group, res.version, res.plural))

    def for_request(self, res: Resource, request: Request, options: str) -> FieldValidation:
        """The `fieldValidation` of one write (`options`: CreateOptions, UpdateOptions or
        PatchOptions, for the error naming a bad directive)."""
        return FieldValidation(self.of(res), res, request, options)


# Strings, whose colons are not member separators; the rest of JSON has no quotes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _measure(obj: Any) -> int:
    """The number of object members in `obj`; 422 when it nests deeper than any object
    may be stored (the codec's limit, checked here before pruning could hide it)."""
    count, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidError(f"object is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, dict):
            count += len(node)
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return count


class _Pairs(dict[str, Any]):
    __slots__ = ("duplicates",)
    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.duplicates = []
    for key, value in pairs:
        if key in out:
            out.duplicates.append(key)
        out[key] = value
    return out


def _duplicates(raw: bytes) -> list[str]:
    """The paths of the members `raw` names twice (the slow path: a second parse)."""
    found: list[str] = []
    try:
        parsed = json.loads(raw, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return []  # what orjson parsed and `json` cannot is not ours to name
    stack: list[tuple[Any, str]] = [(parsed, "")]
    while stack:
        node, path = stack.pop()
        prefix = f"{path}." if path else ""
        if isinstance(node, _Pairs):
            found += [prefix + key for key in dict.fromkeys(node.duplicates)]
            stack.extend((v, prefix + k) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return sorted(found)


class FieldValidation:
    """The `fieldValidation` directive of one write, applied to its body and object."""

    __slots__ = ("directive", "duplicates", "options", "request", "res", "validator")

    def __init__(
        self, validator: Validator | None, res: Resource, request: Request, options: str
    ) -> None:
        directive = request.query_params.get("fieldValidation", "")
        if directive not in _DIRECTIVES:
            supported = ", ".join(f'"{d}"' for d in _DIRECTIVES)
            message = f'Unsupported value: "{directive}": supported values: {supported}'
            raise InvalidError(
                f'{options}.meta.k8s.io "" is invalid: fieldValidation: {message}',
                details={
                    "group": "meta.k8s.io",
                    "kind": options,
                    "causes": [
                        {
                            "reason": "FieldValueNotSupported",
                            "message": message,
                            "field": "fieldValidation",
                        }
                    ],
                },
            )
        self.directive = directive or WARN
        self.validator = validator
        self.res = res
        self.request = request
        self.options = options
        self.duplicates: list[str] = []

    def decode(self, raw: bytes) -> Any:
        """The JSON body (400 when empty or malformed), noting the fields it repeats."""
        if not raw.strip():
            raise BadRequestError("request body is empty")
        body = decode_json(raw)
        members = _measure(body)
        # Each member has one colon outside strings: as many colons as members (the
        # common case, found without a scan) means no member is repeated.
        suspect = self.directive != IGNORE and members and raw.count(b":") != members
        if suspect and _STRING.sub(b"", raw).count(b":") != members:
            self.duplicates = _duplicates(raw)
        return body

    def check(self, obj: dict[str, Any], name: str, *, patched: bool = False) -> dict[str, Any]:
        """`obj` without the fields its schema does not know; 400 (422 for a patch) for
        unknown or duplicate fields under Strict, 422 for values of the wrong type."""
        validator = self.validator
        walk = _Walk()
        if validator is not None:
            obj, walk = validator.walk(obj)
        if patched and walk.unknown and self._strategic():
            # Until strategic merge patches are applied by their directives, the ones a
            # merge leaves behind (`$setElementOrder/secrets`, `$patch`, `$retainKeys`)
            # are dropped as the patch mechanism's, not reported as the client's fields.
            walk.unknown = [p for p in walk.unknown if not _directive(p)]
        problems = [f"duplicate field {_go_quote(p)}" for p in self.duplicates]
        problems += [f"unknown field {_go_quote(p)}" for p in walk.unknown]
        if problems and self.directive == STRICT:
            raise self._strict_error(problems, obj, name, patched)
        if walk.errors:
            raise self._invalid(walk.errors, name)
        if self.directive == WARN:
            add_warnings(self.request, "fieldValidation", problems)
        return obj

    def _strategic(self) -> bool:
        media = self.request.headers.get("content-type", "").split(";", 1)[0]
        return media.strip().lower() == STRATEGIC_MERGE

    def _strict_error(
        self, problems: list[str], obj: dict[str, Any], name: str, patched: bool
    ) -> BadRequestError | InvalidError:
        strict = f"strict decoding error: {', '.join(problems)}"
        res = self.res
        if not patched:
            return BadRequestError(
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: {strict}'
            )
        cause = f"Invalid value: {_quote(obj)}: {strict}"
        return InvalidError(
            f'{self._qualified_kind()} "{name}" is invalid: patch: {cause}',
            details={
                "name": name,
                "group": res.group,
                "kind": res.kind,
                "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "patch"}],
            },
        )

    def _qualified_kind(self) -> str:
        res = self.res
        return f"{res.kind}.{res.group}" if res.group else res.kind

    def _invalid(self, errors: list[tuple[str, str, str, Any]], name: str) -> InvalidError:
        causes = []
        for path, reason, message, value in errors:
            if reason == "FieldValueRequired":
                text = message
            elif reason == "FieldValueNotSupported":
                text = f"Unsupported value: {_quote(value)}: {message}"
            else:
                shown = _quote(value) if value is not None else '"null"'
                text = f"Invalid value: {shown}: {message}"
            causes.append({"reason": reason, "message": text, "field": path})
        listed = [f"{c['field']}: {c['message']}" for c in causes]
        summary = listed[0] if len(listed) == 1 else f"[{', '.join(listed)}]"
        return InvalidError(
            f'{self._qualified_kind()} "{name}" is invalid: {summary}',
            details={
                "name": name,
                "group": self.res.group,
                "kind": self.res.kind,
                "causes": causes,
            },
        )


def field_validation(
    validators: SchemaValidators | None, res: Resource, request: Request, options: str
) -> FieldValidation:
    """The write's `FieldValidation` (duplicate detection only, without validators)."""
    if validators is None:
        return FieldValidation(None, res, request, options)
    return validators.for_request(res, request, options)
