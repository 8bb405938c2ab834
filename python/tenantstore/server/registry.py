"""The resources the server exposes: the built-in core ones plus custom ones from a file.

A resource fixes everything the REST layer derives from it: its URL (group, version,
plural, namespaced or not), its kind and list kind, and its storage prefix
(`/registry/<plural>` for the core group, `/registry/<group>/<plural>` otherwise). The
prefix is what the tenancy factory builds one cacher for, and the keys below it follow the
cacher's default layout (`<prefix>/<namespace>/<name>` or `<prefix>/<name>`), so the
project segment the key rewriter inserts lines up with the cache's btree.

Custom resources come from a YAML or JSON file, each entry in the shape of a CRD's
names and version (the keys sit on the entry):

    resources:
      - group: example.com
        version: v1
        kind: Widget
        plural: widgets
        singular: widget
        namespaced: true
        shortNames: [wd]
        categories: [all]
        subresources: {status: {}}
        additionalPrinterColumns:
          - {name: Size, type: integer, jsonPath: .spec.size}
        schema:
          openAPIV3Schema: {type: object, properties: {spec: {type: object}}}

The schema is kept as given (a mapping); what it must look like is checked where it is
used (OpenAPI and validation), as the API server validates a CRD's schema on its own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_RESOURCES",
    "PrinterColumn",
    "RegistryError",
    "Resource",
    "ResourceRegistry",
]

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_VERSION = re.compile(r"^v[0-9]+((alpha|beta)[0-9]+)?$")

#: Verbs every resource supports (what discovery advertises).
VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


class RegistryError(ValueError):
    """A resource declaration (or the file holding it) is malformed."""


_COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    """One `additionalPrinterColumns` entry of a CRD: a Table column read by JSONPath."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource: where it lives in URLs and in storage, and what it is called."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = field(default=())
    categories: tuple[str, ...] = field(default=())
    #: `subresources: {status: {}}`: `/status` is served and the main resource ignores
    #: `.status` changes.
    status_subresource: bool = False
    printer_columns: tuple[PrinterColumn, ...] = field(default=())
    #: The entry's `schema.openAPIV3Schema`, as given (None: preserve unknown fields).
    schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def api_version(self) -> str:
        """`v1` for core, `<group>/<version>` otherwise (the objects' apiVersion)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def prefix(self) -> str:
        """The storage prefix the factory builds one cacher for."""
        if self.group:
            return f"/registry/{self.group}/{self.plural}"
        return f"/registry/{self.plural}"

    @property
    def label(self) -> str:
        """`plural` or `plural.group`: the metric label and the name kubectl uses."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str) -> str:
        """The storage key of one object (the cacher's default key-function layout)."""
        if self.namespaced:
            return f"{self.prefix}/{namespace}/{name}"
        return f"{self.prefix}/{name}"

    def collection_key(self, namespace: str | None) -> str:
        """The key a recursive list or watch of one namespace (or all) uses."""
        if self.namespaced and namespace:
            return f"{self.prefix}/{namespace}"
        return self.prefix

    def discovery(self) -> dict[str, Any]:
        """The entry of an `APIResourceList`."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular_name,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(VERBS),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        return entry


BUILTIN_RESOURCES: tuple[Resource, ...] = (
    # Namespaces have a status subresource, as upstream: the lifecycle owns `.status`.
    Resource(
        "", "v1", "Namespace", "namespaces", False, short_names=("ns",), status_subresource=True
    ),
    Resource("", "v1", "ConfigMap", "configmaps", True, short_names=("cm",)),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, short_names=("sa",)),
    Resource("", "v1", "Event", "events", True, short_names=("ev",)),
)


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise RegistryError(message)


def _entry_name(spec: dict[str, Any]) -> str:
    """` (Widget/widgets)`: what a person searches the file for, when the entry has it."""
    named = [spec[f] for f in ("kind", "plural") if isinstance(spec.get(f), str) and spec[f]]
    return f" ({'/'.join(named)})" if named else ""


_REQUIRED = ("version", "kind", "plural")


def parse_resource(spec: Any, where: str = "resource") -> Resource:
    """One declaration (a mapping) as a `Resource`; `RegistryError` when malformed.

    Every message starts with `where` and the entry's kind/plural (when it has them), so
    a person can find the entry in a long file.
    """
    _need(isinstance(spec, dict), f"{where}: must be a mapping, not {_type_name(spec)}")
    where += _entry_name(spec)
    known = {
        "group",
        "version",
        "kind",
        "plural",
        "namespaced",
        "singular",
        "shortNames",
        "categories",
        "subresources",
        "additionalPrinterColumns",
        "schema",
    }
    unknown = sorted(str(k) for k in set(spec) - known)
    _need(
        not unknown,
        f"{where}: unknown field{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})",
    )
    for name in _REQUIRED:
        _need(name in spec, f'{where}: missing field "{name}"')
        _need(spec[name] is not None, f'{where}: field "{name}" has no value')
    group = spec.get("group", "")
    version = spec["version"]
    kind = spec["kind"]
    plural = spec["plural"]
    namespaced = spec.get("namespaced", True)
    singular = spec.get("singular", "")
    short = spec.get("shortNames", [])
    _need(isinstance(group, str), f"{where}: group must be a string")
    _need(
        group == "" or (len(group) <= 253 and bool(_SUBDOMAIN.match(group)) and "." in group),
        f"{where}: group {group!r} must be a DNS subdomain with a dot (e.g. example.com)",
    )
    _need(
        isinstance(version, str) and bool(_VERSION.match(version)),
        f"{where}: version {version!r} must look like v1, v1beta1, v2alpha1",
    )
    _need(
        isinstance(kind, str) and bool(_KIND.match(kind)),
        f"{where}: kind {kind!r} must be CamelCase",
    )
    _need(
        isinstance(plural, str) and len(plural) <= 63 and bool(_LABEL.match(plural)),
        f"{where}: plural {plural!r} must be a lowercase DNS label",
    )
    _need(isinstance(namespaced, bool), f"{where}: namespaced must be true or false")
    _need(
        isinstance(singular, str) and (singular == "" or bool(_LABEL.match(singular))),
        f"{where}: singular {singular!r} must be a lowercase DNS label",
    )
    _need(
        isinstance(short, list) and all(isinstance(s, str) and _LABEL.match(s) for s in short),
        f"{where}: shortNames must be a list of lowercase names",
    )
    categories = spec.get("categories", [])
    _need(
        isinstance(categories, list)
        and all(isinstance(c, str) and _LABEL.match(c) for c in categories),
        f"{where}: categories must be a list of lowercase names",
    )
    assert isinstance(version, str) and isinstance(kind, str) and isinstance(plural, str)
    _need(plural != "namespaces" or group != "", f"{where}: 'namespaces' is reserved")
    return Resource(
        group,
        version,
        kind,
        plural,
        namespaced,
        singular,
        tuple(short),
        tuple(categories),
        status_subresource=_parse_subresources(spec.get("subresources"), where),
        printer_columns=_parse_columns(spec.get("additionalPrinterColumns"), where),
        schema=_parse_schema(spec.get("schema"), where),
    )


def _parse_subresources(value: Any, where: str) -> bool:
    if value is None:
        return False
    _need(isinstance(value, dict), f"{where}: subresources must be a mapping")
    unknown = sorted(str(k) for k in set(value) - {"status"})
    _need(not unknown, f"{where}: unsupported subresources {', '.join(map(repr, unknown))}")
    status = value.get("status", None)
    _need(
        "status" not in value or status is None or status == {},
        f"{where}: subresources.status must be an empty mapping ({{}})",
    )
    return "status" in value


def _parse_columns(value: Any, where: str) -> tuple[PrinterColumn, ...]:
    if value is None:
        return ()
    _need(isinstance(value, list), f"{where}: additionalPrinterColumns must be a list")
    columns: list[PrinterColumn] = []
    for i, col in enumerate(value):
        at = f"{where}: additionalPrinterColumns[{i}]"
        _need(isinstance(col, dict), f"{at}: must be a mapping")
        unknown = sorted(
            str(k)
            for k in set(col) - {"name", "type", "jsonPath", "description", "format", "priority"}
        )
        _need(not unknown, f"{at}: unknown fields {', '.join(map(repr, unknown))}")
        name, kind, path = col.get("name"), col.get("type"), col.get("jsonPath")
        _need(isinstance(name, str) and name != "", f"{at}: name must be a non-empty string")
        _need(kind in _COLUMN_TYPES, f"{at}: type must be one of {', '.join(_COLUMN_TYPES)}")
        _need(
            isinstance(path, str) and path.startswith("."),
            f"{at}: jsonPath must be a string starting with '.' (e.g. .spec.size)",
        )
        description, fmt = col.get("description", ""), col.get("format", "")
        priority = col.get("priority", 0)
        _need(isinstance(description, str), f"{at}: description must be a string")
        _need(isinstance(fmt, str), f"{at}: format must be a string")
        _need(
            isinstance(priority, int) and not isinstance(priority, bool) and priority >= 0,
            f"{at}: priority must be an integer >= 0",
        )
        assert isinstance(name, str) and isinstance(kind, str) and isinstance(path, str)
        columns.append(PrinterColumn(name, kind, path, description, fmt, priority))
    return tuple(columns)


def _parse_schema(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    _need(
        isinstance(value, dict) and set(value) == {"openAPIV3Schema"},
        f"{where}: schema must be a mapping with one key, openAPIV3Schema",
    )
    schema = value["openAPIV3Schema"]
    _need(
        isinstance(schema, dict) and schema.get("type", "object") == "object",
        f"{where}: schema.openAPIV3Schema must be a mapping of type object",
    )
    assert isinstance(schema, dict)
    return schema


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "empty"}.get(
        type(value), type(value).__name__
    )


def _one_line(text: object) -> str:
    # YAML's parse errors span several lines; a start-up error is one.
    return " ".join(str(text).split())


def load_resources_file(path: str | os.PathLike[str]) -> list[Resource]:
    """Read custom resources from a YAML (`.yaml`/`.yml`) or JSON file.

    Also refuses what `ResourceRegistry` would (an entry declared twice, or twice under
    one storage prefix), here where the entry's position in the file is known.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise RegistryError(f"{path}: not a UTF-8 text file") from None
    try:
        if str(path).endswith(".json"):
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parse errors
        raise RegistryError(f"{path}: not valid YAML/JSON: {_one_line(exc)}") from None
    except Exception as exc:  # yaml.YAMLError does not derive from ValueError
        # A MarkedYAMLError's text quotes the offending line with a caret under it.
        problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
        if problem and mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
            raise RegistryError(f"{path}: not valid YAML: {where}: {problem}") from None
        raise RegistryError(f"{path}: not valid YAML/JSON: {_one_line(exc)}") from None
    if doc is None:
        return []
    _need(
        isinstance(doc, dict),
        f"{path}: top level must be a mapping with 'resources', not {_type_name(doc)}",
    )
    unknown = sorted(str(k) for k in set(doc) - {"resources"})
    _need(
        not unknown,
        f"{path}: unknown top-level field {', '.join(map(repr, unknown))} "
        "(expected only 'resources')",
    )
    items = doc.get("resources", [])
    if items is None:
        return []
    _need(isinstance(items, list), f"{path}: 'resources' must be a list, not {_type_name(items)}")
    resources: list[Resource] = []
    # storage prefix -> index of the entry declaring it (-1: built in)
    declared: dict[str, int] = {r.prefix: -1 for r in BUILTIN_RESOURCES}
    for i, spec in enumerate(items):
        where = f"{path}: resources[{i}]"
        res = parse_resource(spec, where)
        where += _entry_name(spec)
        first = declared.get(res.prefix)
        if first == -1:
            raise RegistryError(f"{where}: {res.label} is a built-in resource")
        if first is not None:
            other = resources[first]
            also = "" if other.version == res.version else " (served in one version only)"
            raise RegistryError(
                f"{where}: {res.label} already declared in resources[{first}]{also}"
            )
        declared[res.prefix] = i
        resources.append(res)
    return resources


class ResourceRegistry:
    """Lookup of resources by (group, version, plural), and the discovery views of them."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._by_gvr: dict[tuple[str, str, str], Resource] = {}
        self._groups: dict[str, list[str]] = {}
        for res in resources:
            gvr = (res.group, res.version, res.plural)
            if gvr in self._by_gvr:
                raise RegistryError(f"resource {res.plural} in {res.api_version} declared twice")
            self._by_gvr[gvr] = res
            versions = self._groups.setdefault(res.group, [])
            if res.version not in versions:
                versions.append(res.version)
        prefixes = [r.prefix for r in self._by_gvr.values()]
        if len(set(prefixes)) != len(prefixes):
            # Two versions of one group/plural would share a storage prefix (one cacher).
            raise RegistryError("a group/plural may be declared in one version only")

    @classmethod
    def with_builtins(cls, path: str | os.PathLike[str] | None = None) -> ResourceRegistry:
        """The built-in core resources plus those declared in `path` (if given)."""
        extra = load_resources_file(path) if path else []
        return cls([*BUILTIN_RESOURCES, *extra])

    def __iter__(self) -> Iterator[Resource]:
        return iter(self._by_gvr.values())

    def __len__(self) -> int:
        return len(self._by_gvr)

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_gvr.get((group, version, plural))

    def has_group_version(self, group: str, version: str) -> bool:
        return version in self._groups.get(group, [])

    def group_versions(self, group: str) -> list[str]:
        return list(self._groups.get(group, []))

    @property
    def groups(self) -> list[str]:
        """Named groups (not the core group), in declaration order."""
        return [g for g in self._groups if g]

    @property
    def prefixes(self) -> list[str]:
        return [r.prefix for r in self]

    def resources_of(self, group: str, version: str) -> list[Resource]:
        return [r for r in self if r.group == group and r.version == version]
