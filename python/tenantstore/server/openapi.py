"""The OpenAPI documents: `/openapi/v2`, the `/openapi/v3` index and one v3 document per
group-version, built from the resource registry.

kubectl reads them to decide how to validate and patch: `kubectl apply/create` (which
default to `--validate=strict`) look up the PATCH operation of the object's kind in the v3
document of its group-version, and when it lists the `fieldValidation` query parameter
they leave validation to the server (sending `fieldValidation=Strict`) instead of
validating against the v2 document themselves; `kubectl apply` computes its strategic
merge patch from the v3 schema of a kind whose PATCH accepts that content type, and
`kubectl explain` prints the schema's descriptions. The built-in kinds get their schemas
from `openapi_builtin.py`; a custom resource gets the `schema.openAPIV3Schema` of its
`--resources` entry (or `x-kubernetes-preserve-unknown-fields` without one) plus
`apiVersion`, `kind` and `metadata` as `ObjectMeta`, as a CRD's published schema does.

The documents are the same in every project (the resource set is server-wide) and are
built once, on first request. Each v3 document's hash (the upper-case hex SHA-512 of its
JSON, as kube-openapi computes it) is in the index's `serverRelativeURL`; a request with
the current hash is answered with year-long cache headers, one with a stale hash is
redirected (301) to the current URL, both as kube-openapi does. v2 is served as JSON
only: a client that accepts nothing but its protobuf form gets a 406 (see `respond`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..storage.errors import NotFoundError, StorageError
from .discovery import KUBE_VERSION
from .openapi_builtin import CORE, DEFINITIONS, META, definition_of
from .patch import APPLY, JSON_PATCH, MERGE, STRATEGIC
from .registry import Resource, ResourceRegistry

__all__ = ["NotAcceptableError", "OpenAPIDocuments", "custom_definitions", "definition_name"]

Schema = dict[str, Any]
JSON = "application/json"

#: The patch content types the server applies (`handlers.patch`); custom resources do not
#: take strategic merge patches in Kubernetes, so their documents leave that one out.
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC, APPLY)
_YEAR = 365 * 24 * 3600


class NotAcceptableError(StorageError):
    code = 406
    reason = "NotAcceptable"


def definition_name(res: Resource) -> str:
    """The schema name of `res`'s kind: Kubernetes' for the built-ins, and a CRD's
    (`com.example.v1.Widget`: the group reversed, then the version and kind) otherwise."""
    if not res.group:
        return definition_of(res.kind) or f"{CORE}{res.kind}"
    reversed_group = ".".join(reversed(res.group.split(".")))
    return f"{reversed_group}.{res.version}.{res.kind}"


def _gvk(res: Resource, kind: str | None = None) -> dict[str, str]:
    return {"group": res.group, "version": res.version, "kind": kind or res.kind}


def custom_definitions(res: Resource) -> dict[str, Schema]:
    """The schemas of a custom resource's kind and list kind, in the neutral form of
    `openapi_builtin` (bare `$ref` names)."""
    name = definition_name(res)
    schema: Schema = copy.deepcopy(res.schema) if res.schema is not None else {}
    schema["type"] = "object"
    if res.schema is None:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    properties = dict(schema.get("properties") or {})
    typed = DEFINITIONS[CORE + "ConfigMap"]["properties"]
    properties["apiVersion"] = copy.deepcopy(typed["apiVersion"])
    properties["kind"] = copy.deepcopy(typed["kind"])
    properties["metadata"] = {
        "$ref": META + "ObjectMeta",
        "description": "Standard object metadata: name, namespace, labels...",
    }
    schema["properties"] = dict(sorted(properties.items()))
    schema["x-kubernetes-group-version-kind"] = [_gvk(res)]
    list_schema: Schema = {
        "description": f"A list of {res.kind}.",
        "type": "object",
        "properties": {
            "apiVersion": properties["apiVersion"],
            "items": {
                "type": "array",
                "description": f"The {res.kind} objects of this page of the list.",
                "items": {"$ref": name},
            },
            "kind": properties["kind"],
            "metadata": {
                "$ref": META + "ListMeta",
                "description": "Standard list metadata: resourceVersion and continue.",
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [_gvk(res, res.list_kind)],
    }
    return {name: schema, f"{name}List": list_schema}


# -- operations --------------------------------------------------------------------------


def _param(name: str, description: str, kind: str = "string", where: str = "query") -> Schema:
    param: Schema = {"name": name, "in": where, "description": description}
    param["schema"] = {"type": kind, "uniqueItems": True}
    if where == "path":
        param["required"] = True
    return param


_PRETTY = _param("pretty", "If 'true', the output is pretty printed.")
_DRY_RUN = _param("dryRun", "All: run every check but do not persist the change.")
_FIELD_MANAGER = _param("fieldManager", "The name of the actor making the change.")
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "What to do with unknown or duplicate fields in the object: Ignore (drop them "
    "silently), Warn (drop them with a Warning header each; the default) or Strict (fail "
    "the request).",
)
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_LIST_PARAMS = [
    _param("allowWatchBookmarks", "Ask a watch for BOOKMARK events.", "boolean"),
    _param("continue", "The token of the next page, from a previous list."),
    _param("fieldSelector", "Select objects by fields (metadata.name, metadata.namespace)."),
    _param("labelSelector", "Select objects by labels."),
    _param("limit", "The most items to return in one page.", "integer"),
    _param("resourceVersion", "Which revision the list may be served from."),
    _param("resourceVersionMatch", "How resourceVersion applies: NotOlderThan or Exact."),
    _param("sendInitialEvents", "Start a watch with the current state.", "boolean"),
    _param("timeoutSeconds", "How long a list or watch may run.", "integer"),
    _param("watch", "Watch for changes instead of listing.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _param("gracePeriodSeconds", "Seconds before the object is deleted.", "integer"),
    _param(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "Delete an object that cannot be read (administrators only).",
        "boolean",
    ),
    _param("propagationPolicy", "How dependents are collected."),
]


def _content(ref: str, types: Iterable[str] = (JSON,)) -> Schema:
    return {t: {"schema": {"$ref": ref}} for t in types}


def _response(ref: str, description: str = "OK") -> Schema:
    return {"description": description, "content": _content(ref)}


class _Operations:
    """The path items of one resource, in the neutral form (refs by bare name)."""

    def __init__(self, res: Resource) -> None:
        self.res = res
        self.name = definition_name(res)
        self.list_name = f"{self.name}List"
        group = res.group.split(".")[0] if res.group else "core"
        self.tag = f"{group}_{res.version}"
        words = [w[:1].upper() + w[1:] for w in group.replace("-", ".").split(".")]
        self.id_infix = "".join(words) + res.version[:1].upper() + res.version[1:]

    def _op(self, verb: str, action: str, ns: bool, suffix: str = "", **fields: Any) -> Schema:
        kind = self.res.kind + suffix
        namespaced = "Namespaced" if ns else ""
        op: Schema = {
            "tags": [self.tag],
            "description": f"{action} {kind}",
            "operationId": f"{verb}{self.id_infix}{namespaced}{kind}",
            **fields,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": _gvk(self.res),
        }
        responses = op.setdefault("responses", {})
        responses["401"] = {"description": "Unauthorized"}
        return op

    def _body(self, types: Iterable[str] = ("*/*",)) -> Schema:
        return {"content": _content(self.name, types), "required": True}

    def collection(self, ns: bool) -> Schema:
        ok = _response(self.name)
        return {
            "get": self._op(
                "list",
                "list",
                ns,
                "",
                parameters=_LIST_PARAMS,
                responses={"200": _response(self.list_name)},
            ),
            "post": self._op(
                "create",
                "post",
                ns,
                parameters=_WRITE_PARAMS,
                requestBody=self._body(),
                responses={"200": ok, "201": _response(self.name, "Created")},
            ),
            "delete": self._op(
                "deletecollection",
                "deletecollection",
                ns,
                parameters=[*_DELETE_PARAMS, *_LIST_PARAMS],
                requestBody={"content": _content(META + "DeleteOptions", ("*/*",))},
                responses={"200": _response(META + "Status")},
            ),
            "parameters": self._path_params(ns, False),
        }

    def item(self, ns: bool) -> Schema:
        ok = _response(self.name)
        patch_types = PATCH_TYPES if not self.res.group else (JSON_PATCH, MERGE, APPLY)
        return {
            "get": self._op("read", "get", ns, responses={"200": ok}),
            "put": self._op(
                "replace",
                "put",
                ns,
                parameters=_WRITE_PARAMS,
                requestBody=self._body(),
                responses={"200": ok, "201": _response(self.name, "Created")},
            ),
            "patch": self._op(
                "patch",
                "patch",
                ns,
                parameters=[*_WRITE_PARAMS, _param("force", "Force an apply.", "boolean")],
                requestBody={
                    "content": {t: {"schema": {"$ref": META + "Patch"}} for t in patch_types},
                    "required": True,
                },
                responses={"200": ok},
            ),
            "delete": self._op(
                "delete",
                "delete",
                ns,
                parameters=_DELETE_PARAMS,
                requestBody={"content": _content(META + "DeleteOptions", ("*/*",))},
                responses={"200": ok, "202": ok},
            ),
            "parameters": self._path_params(ns, True),
        }

    def all_namespaces(self) -> Schema:
        return {
            "get": self._op(
                "list",
                "list",
                False,
                "ForAllNamespaces",
                parameters=_LIST_PARAMS,
                responses={"200": _response(self.list_name)},
            ),
        }

    def _path_params(self, ns: bool, named: bool) -> list[Schema]:
        params = [_PRETTY]
        if named:
            params.insert(0, _param("name", f"The name of the {self.res.kind}.", where="path"))
        if ns:
            params.insert(0, _param("namespace", "The object's namespace.", where="path"))
        return params

    def paths(self) -> dict[str, Schema]:
        res = self.res
        base = f"/apis/{res.group}/{res.version}" if res.group else "/api/v1"
        if res.namespaced:
            scoped = f"{base}/namespaces/{{namespace}}/{res.plural}"
            return {
                f"{base}/{res.plural}": self.all_namespaces(),
                scoped: self.collection(True),
                f"{scoped}/{{name}}": self.item(True),
            }
        return {
            f"{base}/{res.plural}": self.collection(False),
            f"{base}/{res.plural}/{{name}}": self.item(False),
        }


# -- rendering ---------------------------------------------------------------------------


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref)
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(roots: Iterable[str], definitions: dict[str, Schema]) -> dict[str, Schema]:
    """The definitions `roots` reach through references, sorted by name."""
    todo, seen = list(roots), set[str]()
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(found - seen)
    return {name: definitions[name] for name in sorted(seen)}


def _render(node: Any, prefix: str, *, v3: bool, schema_position: bool = False) -> Any:
    """A neutral schema or operation with its references written for one version.

    In v3 a reference that carries siblings (a field's description) is wrapped in
    `allOf`, since a `$ref` stands alone there; v2 keeps the siblings next to `$ref`.
    """
    if isinstance(node, list):
        return [_render(v, prefix, v3=v3, schema_position=schema_position) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        target = {"$ref": prefix + ref}
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if v3 and schema_position:
            return {"allOf": [target], **siblings}
        return {**target, **siblings}
    out: dict[str, Any] = {}
    for key, value in node.items():
        nested = key in ("properties", "additionalProperties", "items")
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                k: _render(v, prefix, v3=v3, schema_position=True) for k, v in value.items()
            }
        else:
            out[key] = _render(value, prefix, v3=v3, schema_position=nested)
    return out


def _hash(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


class OpenAPIDocuments:
    """The server's OpenAPI documents, built on first use and then served from bytes."""

    def __init__(self, registry: ResourceRegistry) -> None:
        self.registry = registry
        self._v3: dict[str, tuple[bytes, str]] | None = None
        self._v2: bytes | None = None

    def _definitions(self) -> dict[str, Schema]:
        definitions = dict(DEFINITIONS)
        for res in self.registry:
            if res.group:
                definitions.update(custom_definitions(res))
        # DeleteOptions and WatchEvent are the same type in every group-version.
        gvks = [{"group": g, "version": v, "kind": "DeleteOptions"} for g, v in self._gvs()]
        for kind in ("DeleteOptions", "WatchEvent"):
            definitions[META + kind] = {
                **definitions[META + kind],
                "x-kubernetes-group-version-kind": [{**gvk, "kind": kind} for gvk in gvks],
            }
        return definitions

    def _gvs(self) -> list[tuple[str, str]]:
        gvs = [("", "v1")]
        for group in self.registry.groups:
            gvs += [(group, v) for v in self.registry.group_versions(group)]
        return gvs

    def _paths(self, resources: Iterable[Resource]) -> dict[str, Schema]:
        paths: dict[str, Schema] = {}
        for res in resources:
            paths.update(_Operations(res).paths())
        return dict(sorted(paths.items()))

    def v3_documents(self) -> dict[str, tuple[bytes, str]]:
        """`{"api/v1" or "apis/<g>/<v>": (JSON bytes, hash)}`."""
        if self._v3 is None:
            definitions = self._definitions()
            docs: dict[str, tuple[bytes, str]] = {}
            for group, version in self._gvs():
                resources = self.registry.resources_of(group, version)
                paths = self._paths(resources)
                roots: set[str] = {META + "Status", META + "DeleteOptions", META + "WatchEvent"}
                _refs(paths, roots)
                schemas = _closure(roots, definitions)
                doc = {
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes", "version": _kube_version()},
                    "paths": _render(paths, "#/components/schemas/", v3=True),
                    "components": {
                        "schemas": {
                            n: _render(s, "#/components/schemas/", v3=True)
                            for n, s in schemas.items()
                        }
                    },
                }
                data = orjson.dumps(doc)
                key = f"apis/{group}/{version}" if group else "api/v1"
                docs[key] = (data, _hash(data))
            self._v3 = docs
        return self._v3

    def v3_index(self) -> bytes:
        paths = {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
            for key, (_, digest) in sorted(self.v3_documents().items())
        }
        return orjson.dumps({"paths": paths})

    def v2_document(self) -> bytes:
        if self._v2 is None:
            definitions = self._definitions()
            paths: dict[str, Schema] = {}
            for path, item in self._paths(self.registry).items():
                paths[path] = {
                    verb: _v2_operation(op) if verb != "parameters" else _v2_params(op)
                    for verb, op in item.items()
                }
            doc = {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": _kube_version()},
                "paths": _render(paths, "#/definitions/", v3=False),
                "definitions": {
                    n: _render(s, "#/definitions/", v3=False) for n, s in definitions.items()
                },
            }
            self._v2 = orjson.dumps(doc)
        return self._v2

    def respond(self, request: Request, path: str, project: str | None) -> Response:
        """Answer `/openapi/<path>` (`path` is `v2`, `v3` or `v3/<group-version>`)."""
        accept = request.headers.get("accept", "")
        if path == "v2":
            _require_json(accept)
            data = self.v2_document()
            return _cacheable(request, data, _hash(data))
        if path == "v3":
            data = self.v3_index()
            return _cacheable(request, data, _hash(data))
        gv = path[3:] if path.startswith("v3/") else ""
        found = self.v3_documents().get(gv)
        if found is None:
            raise NotFoundError(
                f"the server could not find the requested resource (/openapi/{path})"
            )
        _require_json(accept)
        data, digest = found
        wanted = request.query_params.get("hash", "")
        if wanted and wanted != digest:
            base = f"/projects/{project}/control-plane" if project else ""
            location = f"{base}/openapi/v3/{quote(gv)}?hash={digest}"
            return Response(status_code=301, headers={"Location": location, "Vary": "Accept"})
        response = _cacheable(request, data, digest)
        response.headers["Vary"] = "Accept"
        if wanted:
            response.headers["Cache-Control"] = "public, immutable"
            response.headers["Expires"] = _expires()
        return response


def _v2_params(params: list[Schema]) -> list[Schema]:
    return [
        {k: v for k, v in p.items() if k != "schema"} | {"type": p["schema"]["type"]}
        for p in params
    ]


def _v2_operation(op: Schema) -> Schema:
    out = {k: v for k, v in op.items() if k not in ("requestBody", "responses", "parameters")}
    params = _v2_params(op.get("parameters", []))
    body = op.get("requestBody")
    if body is not None:
        content = body["content"]
        out["consumes"] = list(content)
        schema = next(iter(content.values()))["schema"]
        params.insert(0, {"name": "body", "in": "body", "required": True, "schema": schema})
    out["parameters"] = params
    out["produces"] = [JSON]
    out["schemes"] = ["https"]
    responses: Schema = {}
    for code, response in op.get("responses", {}).items():
        entry: Schema = {"description": response["description"]}
        if "content" in response:
            entry["schema"] = next(iter(response["content"].values()))["schema"]
        responses[code] = entry
    out["responses"] = responses
    return out


def _kube_version() -> str:
    major, minor = KUBE_VERSION
    return f"v{major}.{minor}.0"


def _require_json(accept: str) -> None:
    """406 when the client accepts only the protobuf form (which is not served)."""
    if not accept.strip():
        return
    for clause in accept.split(","):
        media = clause.split(";", 1)[0].strip().lower()
        if media in (JSON, "application/*", "*/*", "*"):
            return
    raise NotAcceptableError(
        "only application/json is served for the OpenAPI documents, not "
        f"{accept.split(',')[0].strip()!r}"
    )


def _cacheable(request: Request, data: bytes, digest: str) -> Response:
    etag = f'"{digest}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(data, media_type=JSON, headers={"ETag": etag})


def _expires() -> str:
    import email.utils
    import time

    return email.utils.formatdate(time.time() + _YEAR, usegmt=True)
