"""The OpenAPI schemas of the built-in types, as data.

The shapes, field names, formats and list/map extensions are Kubernetes' own (kubectl's
strategic merge patch and `explain` read them); the descriptions are short and ours.
Schemas refer to each other by bare definition name (`{"$ref": "io.k8s...ObjectMeta"}`):
`openapi.py` renders a reference the way each OpenAPI version writes it (v2's
`#/definitions/...`, v3's `allOf` wrapper under `#/components/schemas/...`) and
`schema_validation.py` resolves it directly, so one table serves the documents and the
validation of writes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CORE", "DEFINITIONS", "META", "RAW_EXTENSION", "definition_of"]

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"

Schema = dict[str, Any]


def _s(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def _int(description: str, fmt: str = "int64") -> Schema:
    return {"type": "integer", "format": fmt, "description": description}


def _bool(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def _ref(name: str, description: str = "") -> Schema:
    ref: Schema = {"$ref": name}
    if description:
        ref["description"] = description
    return ref


def _strings_map(description: str, fmt: str = "") -> Schema:
    value: Schema = {"type": "string", "default": ""}
    if fmt:
        value = {"type": "string", "format": fmt}
    return {"type": "object", "additionalProperties": value, "description": description}


def _list(items: Schema, description: str, **extensions: Any) -> Schema:
    return {"type": "array", "items": items, "description": description, **extensions}


def _object(
    description: str,
    properties: dict[str, Schema],
    *,
    required: tuple[str, ...] = (),
    gvk: tuple[str, str, str] | None = None,
    extensions: Schema | None = None,
) -> Schema:
    schema: Schema = {"description": description, "type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if gvk is not None:
        group, version, kind = gvk
        schema["x-kubernetes-group-version-kind"] = [
            {"group": group, "version": version, "kind": kind}
        ]
    schema.update(extensions or {})
    return schema


_ATOMIC = {"x-kubernetes-map-type": "atomic"}
_API_VERSION = _s(
    "The versioned schema of this representation of an object (group/version), which the "
    "server uses to convert it."
)
_KIND = _s("The REST resource type this object represents, in CamelCase.")
_OBJECT_META = _ref(META + "ObjectMeta", "Standard object metadata: name, namespace, labels...")
_LIST_META = _ref(META + "ListMeta", "Standard list metadata: resourceVersion and continue.")


def _typed(properties: dict[str, Schema]) -> dict[str, Schema]:
    """The `apiVersion`/`kind`/`metadata` every top-level object starts with."""
    return {"apiVersion": _API_VERSION, "kind": _KIND, "metadata": _OBJECT_META, **properties}


def _list_of(kind: str, item: str, description: str) -> Schema:
    return _object(
        description,
        {
            "apiVersion": _API_VERSION,
            "items": _list(_ref(item), f"The {kind}s of this page of the list."),
            "kind": _KIND,
            "metadata": _LIST_META,
        },
        required=("items",),
        gvk=("", "v1", f"{kind}List"),
    )


_META_DEFINITIONS: dict[str, Schema] = {
    META + "Time": {
        "type": "string",
        "format": "date-time",
        "description": "A timestamp in RFC 3339 form, to the second.",
    },
    META + "MicroTime": {
        "type": "string",
        "format": "date-time",
        "description": "A timestamp in RFC 3339 form, to the microsecond.",
    },
    META + "FieldsV1": {
        "type": "object",
        "description": "The set of fields a manager owns, in the fieldsV1 trie format.",
    },
    META + "ManagedFieldsEntry": _object(
        "Which fields of an object one manager owns, and through which operation.",
        {
            "apiVersion": _s("The version of the resource the fields were set in."),
            "fieldsType": _s("The format of fieldsV1; the only one is FieldsV1."),
            "fieldsV1": _ref(META + "FieldsV1", "The owned fields."),
            "manager": _s("Who manages these fields (a client's fieldManager)."),
            "operation": _s("The operation that set the fields: Apply or Update."),
            "subresource": _s("The subresource the fields were set through, if any."),
            "time": _ref(META + "Time", "When the fields were last changed."),
        },
    ),
    META + "OwnerReference": _object(
        "An object this object depends on; deleting the owner collects its dependents.",
        {
            "apiVersion": _s("The owner's API version."),
            "blockOwnerDeletion": _bool("Whether the owner waits for this dependent."),
            "controller": _bool("Whether the owner is this object's managing controller."),
            "kind": _s("The owner's kind."),
            "name": _s("The owner's name."),
            "uid": _s("The owner's uid."),
        },
        required=("apiVersion", "kind", "name", "uid"),
        extensions=_ATOMIC,
    ),
    META + "ObjectMeta": _object(
        "Metadata every persisted object has: its identity, labels, annotations and the "
        "server-maintained fields.",
        {
            "annotations": _strings_map(
                "Unstructured key/value data that tools set and read; not queryable."
            ),
            "creationTimestamp": _ref(
                META + "Time", "When the server created the object. Read-only."
            ),
            "deletionGracePeriodSeconds": _int(
                "Seconds the object has left to terminate gracefully. Read-only."
            ),
            "deletionTimestamp": _ref(
                META + "Time", "When the object is to be deleted. Read-only."
            ),
            "finalizers": _list(
                {"type": "string", "default": ""},
                "Conditions that must clear before the object is deleted.",
                **{"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
            ),
            "generateName": _s(
                "A prefix the server completes with a random suffix when no name is given."
            ),
            "generation": _int("The generation of the desired state. Read-only."),
            "labels": _strings_map("Key/value pairs that label selectors can select on."),
            "managedFields": _list(
                _ref(META + "ManagedFieldsEntry"),
                "Which manager owns which fields of the object.",
                **{"x-kubernetes-list-type": "atomic"},
            ),
            "name": _s("The object's name, unique within its namespace. Immutable."),
            "namespace": _s("The namespace the object lives in; empty for cluster objects."),
            "ownerReferences": _list(
                _ref(META + "OwnerReference"),
                "The objects this object depends on.",
                **{
                    "x-kubernetes-list-map-keys": ["uid"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid",
                    "x-kubernetes-patch-strategy": "merge",
                },
            ),
            "resourceVersion": _s(
                "An opaque value that changes on every write; a precondition for updates."
            ),
            "selfLink": _s("Deprecated and unset."),
            "uid": _s("Unique in time and space; set by the server on create. Read-only."),
        },
    ),
    META + "ListMeta": _object(
        "Metadata of a list: its resourceVersion and the token of the next page.",
        {
            "continue": _s("The token to pass as `continue` to read the next page."),
            "remainingItemCount": _int("How many items follow this page, when known."),
            "resourceVersion": _s("The revision the list is consistent at."),
            "selfLink": _s("Deprecated and unset."),
        },
    ),
    META + "StatusCause": _object(
        "One cause of an error, typically one invalid field.",
        {
            "field": _s("The field the cause is about, as a path (spec.size)."),
            "message": _s("What went wrong, for humans."),
            "reason": _s("A machine-readable reason (FieldValueInvalid, ...)."),
        },
    ),
    META + "StatusDetails": _object(
        "What an error is about.",
        {
            "causes": _list(
                _ref(META + "StatusCause"),
                "The individual causes.",
                **{"x-kubernetes-list-type": "atomic"},
            ),
            "group": _s("The group of the resource concerned."),
            "kind": _s("The kind of the resource concerned."),
            "name": _s("The name of the object concerned."),
            "retryAfterSeconds": _int("Seconds to wait before retrying.", "int32"),
            "uid": _s("The uid of the object concerned."),
        },
    ),
    META + "Status": _object(
        "The result of a call that does not return an object, and the body of errors.",
        {
            "apiVersion": _API_VERSION,
            "code": _int("The HTTP status code.", "int32"),
            "details": _ref(META + "StatusDetails", "What the error is about."),
            "kind": _KIND,
            "message": _s("What happened, for humans."),
            "metadata": _LIST_META,
            "reason": _s("A machine-readable reason (NotFound, Conflict, ...)."),
            "status": _s("Success or Failure."),
        },
        gvk=("", "v1", "Status"),
    ),
    META + "Preconditions": _object(
        "Conditions the object must meet for the operation to proceed.",
        {
            "resourceVersion": _s("The resourceVersion the object must have."),
            "uid": _s("The uid the object must have."),
        },
    ),
    META + "DeleteOptions": _object(
        "Options of a delete request.",
        {
            "apiVersion": _API_VERSION,
            "dryRun": _list(
                {"type": "string", "default": ""},
                "All: run every check without deleting.",
                **{"x-kubernetes-list-type": "atomic"},
            ),
            "gracePeriodSeconds": _int("Seconds to wait before deleting the object."),
            "ignoreStoreReadErrorWithClusterBreakingPotential": _bool(
                "Delete an object that cannot be read (administrators only)."
            ),
            "kind": _KIND,
            "orphanDependents": _bool("Deprecated: use propagationPolicy."),
            "preconditions": _ref(META + "Preconditions", "Must hold for the delete."),
            "propagationPolicy": _s("How dependents are collected: Orphan, Background, ..."),
        },
        gvk=("", "v1", "DeleteOptions"),
    ),
    META + "WatchEvent": _object(
        "One event of a watch stream.",
        {
            "object": _ref(RAW_EXTENSION, "The object (or, for ERROR, a Status)."),
            "type": _s("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."),
        },
        required=("type", "object"),
        gvk=("", "v1", "WatchEvent"),
    ),
    META + "Patch": {
        "type": "object",
        "description": "A patch document, in the format its content type names.",
    },
    RAW_EXTENSION: {
        "type": "object",
        "description": "An embedded object, kept as the client sent it.",
    },
}

_LOCAL_REF = CORE + "LocalObjectReference"
_OBJECT_REF = CORE + "ObjectReference"

_CORE_DEFINITIONS: dict[str, Schema] = {
    CORE + "ConfigMap": _object(
        "Non-confidential configuration data as key/value pairs.",
        _typed(
            {
                "binaryData": _strings_map(
                    "Binary values, base64-encoded; keys may not repeat those of data.",
                    fmt="byte",
                ),
                "data": _strings_map(
                    "The configuration data: UTF-8 string values under keys of "
                    "alphanumerics, '-', '_' or '.'."
                ),
                "immutable": _bool(
                    "When true, data and binaryData can no longer change (only deletion)."
                ),
            }
        ),
        gvk=("", "v1", "ConfigMap"),
    ),
    CORE + "Secret": _object(
        "Confidential data (passwords, tokens, keys) as key/value pairs.",
        _typed(
            {
                "data": _strings_map("The secret values, base64-encoded.", fmt="byte"),
                "immutable": _bool("When true, the data can no longer change."),
                "stringData": _strings_map(
                    "Write-only convenience: plain string values merged into data on write."
                ),
                "type": _s("How the data is used (Opaque, kubernetes.io/tls, ...)."),
            }
        ),
        gvk=("", "v1", "Secret"),
    ),
    _LOCAL_REF: _object(
        "A reference to an object in the same namespace, by name.",
        {"name": _s("The referenced object's name.", default="")},
        extensions=_ATOMIC,
    ),
    _OBJECT_REF: _object(
        "A reference to any object.",
        {
            "apiVersion": _s("The referenced object's API version."),
            "fieldPath": _s("A field inside the object, when the reference is to part of it."),
            "kind": _s("The referenced object's kind."),
            "name": _s("The referenced object's name."),
            "namespace": _s("The referenced object's namespace."),
            "resourceVersion": _s("The referenced object's resourceVersion, if pinned."),
            "uid": _s("The referenced object's uid."),
        },
        extensions=_ATOMIC,
    ),
    CORE + "ServiceAccount": _object(
        "An identity for processes, with the secrets they may use.",
        _typed(
            {
                "automountServiceAccountToken": _bool(
                    "Whether pods using this account get its API token mounted."
                ),
                "imagePullSecrets": _list(
                    _ref(_LOCAL_REF),
                    "Secrets used to pull images for pods using this account.",
                    **{"x-kubernetes-list-type": "atomic"},
                ),
                "secrets": _list(
                    _ref(_OBJECT_REF),
                    "Secrets pods using this account may use.",
                    **{
                        "x-kubernetes-list-map-keys": ["name"],
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-patch-merge-key": "name",
                        "x-kubernetes-patch-strategy": "merge",
                    },
                ),
            }
        ),
        gvk=("", "v1", "ServiceAccount"),
    ),
    CORE + "NamespaceSpec": _object(
        "The desired state of a namespace.",
        {
            "finalizers": _list(
                {"type": "string", "default": ""},
                "What must finish before the namespace is removed.",
                **{"x-kubernetes-list-type": "atomic"},
            )
        },
    ),
    CORE + "NamespaceCondition": _object(
        "One observed condition of a namespace.",
        {
            "lastTransitionTime": _ref(META + "Time", "When the status last changed."),
            "message": _s("Details, for humans."),
            "reason": _s("Why the condition has its status, in CamelCase."),
            "status": _s("True, False or Unknown."),
            "type": _s("The condition's type."),
        },
        required=("type", "status"),
    ),
    CORE + "NamespaceStatus": _object(
        "The observed state of a namespace.",
        {
            "conditions": _list(
                _ref(CORE + "NamespaceCondition"),
                "The namespace's current conditions.",
                **{
                    "x-kubernetes-list-map-keys": ["type"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "type",
                    "x-kubernetes-patch-strategy": "merge",
                },
            ),
            "phase": _s(
                "Active, or Terminating while its contents are deleted.",
                enum=["Active", "Terminating"],
            ),
        },
    ),
    CORE + "Namespace": _object(
        "A scope for names: namespaced objects live in one.",
        _typed(
            {
                "spec": _ref(CORE + "NamespaceSpec", "The desired state of the namespace."),
                "status": _ref(CORE + "NamespaceStatus", "The observed state. Read-only."),
            }
        ),
        gvk=("", "v1", "Namespace"),
    ),
    CORE + "EventSource": _object(
        "The component that reported an event.",
        {
            "component": _s("The reporting component."),
            "host": _s("The node the component runs on."),
        },
    ),
    CORE + "EventSeries": _object(
        "A series of repeated events.",
        {
            "count": _int("How many times the event occurred.", "int32"),
            "lastObservedTime": _ref(META + "MicroTime", "When it was last observed."),
        },
    ),
    CORE + "Event": _object(
        "A report of something that happened to an object.",
        _typed(
            {
                "action": _s("What was done (or failed) about the object."),
                "count": _int("How many times this event occurred.", "int32"),
                "eventTime": _ref(META + "MicroTime", "When the event was first seen."),
                "firstTimestamp": _ref(META + "Time", "When the event was first recorded."),
                "involvedObject": _ref(_OBJECT_REF, "The object the event is about."),
                "lastTimestamp": _ref(META + "Time", "When the event last occurred."),
                "message": _s("What happened, for humans."),
                "reason": _s("Why the event happened, short and in CamelCase."),
                "related": _ref(_OBJECT_REF, "A second object involved, if any."),
                "reportingComponent": _s("The controller that emitted the event.", default=""),
                "reportingInstance": _s("The instance of that controller.", default=""),
                "series": _ref(CORE + "EventSeries", "The series this event belongs to."),
                "source": _ref(CORE + "EventSource", "The component reporting the event."),
                "type": _s("Normal or Warning."),
            }
        ),
        required=("metadata", "involvedObject"),
        gvk=("", "v1", "Event"),
    ),
}

for _kind, _what in (
    ("ConfigMap", "config maps"),
    ("Secret", "secrets"),
    ("ServiceAccount", "service accounts"),
    ("Namespace", "namespaces"),
    ("Event", "events"),
):
    _CORE_DEFINITIONS[f"{CORE}{_kind}List"] = _list_of(_kind, CORE + _kind, f"A list of {_what}.")

DEFINITIONS: dict[str, Schema] = {**_META_DEFINITIONS, **_CORE_DEFINITIONS}


def definition_of(kind: str) -> str | None:
    """The definition name of a built-in core kind (`ConfigMap`), or None."""
    name = CORE + kind
    return name if name in DEFINITIONS else None
