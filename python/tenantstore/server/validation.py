"""Request-body decoding and object validation, with Kubernetes' messages and codes.

Bodies: at most `max_bytes` (413 beyond), UTF-8 (400 otherwise), a JSON object (400).
Objects: kind/apiVersion must match the URL's resource (422), the name must be a DNS-1123
subdomain of at most 253 characters (a label of at most 63 for namespaces), the name and
namespace in the body must agree with the URL (422). `InvalidError`s carry
`details.causes` like Kubernetes' field errors, so clients can show the failing field.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

import orjson
from starlette.requests import Request

from ..storage.errors import BadRequestError, InvalidError
from .connection import DEFAULT_READ_TIMEOUT
from .registry import Resource
from .status import RequestEntityTooLargeError, RequestTimeoutError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "check_identity",
    "decode_json",
    "generate_name",
    "invalid",
    "read_body",
    "read_json_body",
    "validate_name",
    "validate_namespace_name",
    "validate_object_meta",
]

DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024  # Kubernetes' default request size limit

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
# Kubernetes' utilrand alphabet: no vowels (no accidental words), no 0/1/3 look-alikes.
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


async def read_body(
    request: Request, max_bytes: int, timeout: float = DEFAULT_READ_TIMEOUT
) -> bytes:
    """The raw body; 413 past `max_bytes` (declared or streamed), 408 if the whole body
    has not arrived within `timeout` seconds (a client that stalls mid-body would
    otherwise hold its connection and request task for ever)."""
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > max_bytes
    ):
        raise RequestEntityTooLargeError(f"request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise RequestEntityTooLargeError(
                        f"request body is larger than {max_bytes} bytes"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {timeout:g} seconds"
        ) from None
    return b"".join(chunks)


def decode_json(raw: bytes, what: str = "request body") -> Any:
    """400 for bad UTF-8 or JSON (orjson would say "invalid JSON" for both)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError(f"{what} is not valid UTF-8") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"{what} is not valid JSON: {exc}") from None


async def read_json_body(
    request: Request, max_bytes: int, timeout: float = DEFAULT_READ_TIMEOUT
) -> Any:
    """The decoded JSON body; 413 over `max_bytes`, 400 for empty, bad UTF-8 or JSON."""
    raw = await read_body(request, max_bytes, timeout)
    if not raw.strip():
        raise BadRequestError("request body is empty")
    return decode_json(raw)


def invalid(res: Resource, name: str, field: str, value: Any, detail: str) -> InvalidError:
    """A 422 shaped like Kubernetes' field errors."""
    shown = orjson.dumps(value).decode() if not isinstance(value, str) else f'"{value}"'
    cause = f"Invalid value: {shown}: {detail}"
    return InvalidError(
        f'{res.kind} "{name}" is invalid: {field}: {cause}',
        details={
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": field}],
        },
    )


def validate_name(res: Resource, name: Any, field: str = "metadata.name") -> str:
    """Raise 422 unless `name` is a valid object name for `res`."""
    if not isinstance(name, str) or name == "":
        raise InvalidError(
            f'{res.kind} "" is invalid: {field}: Required value: name or generateName is required',
            details={
                "kind": res.kind,
                "group": res.group,
                "causes": [
                    {
                        "reason": "FieldValueRequired",
                        "message": "Required value: name or generateName is required",
                        "field": field,
                    }
                ],
            },
        )
    if res.plural == "namespaces":
        if len(name) > 63 or not _LABEL.match(name):
            raise invalid(res, name, field, name, _LABEL_MSG)
    elif len(name) > 253 or not _SUBDOMAIN.match(name):
        raise invalid(res, name, field, name, _SUBDOMAIN_MSG)
    return name


def validate_namespace_name(res: Resource, namespace: str) -> None:
    if len(namespace) > 63 or not _LABEL.match(namespace):
        raise invalid(res, "", "metadata.namespace", namespace, _LABEL_MSG)


def generate_name(base: str) -> str:
    """`generateName` + 5 random characters, as Kubernetes' name generator."""
    suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
    return base[: 63 - 5] + suffix if len(base) > 58 else base + suffix


def check_identity(res: Resource, obj: Any) -> dict[str, Any]:
    """The object's metadata, after checking it is an object of `res` (422 otherwise)."""
    if not isinstance(obj, dict):
        raise BadRequestError("request body must be a JSON object")
    kind = obj.get("kind")
    if kind not in (None, "", res.kind):
        raise invalid(res, "", "kind", kind, f"must be {res.kind}")
    api_version = obj.get("apiVersion")
    if api_version not in (None, "", res.api_version):
        raise invalid(res, "", "apiVersion", api_version, f"must be {res.api_version}")
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise invalid(res, "", "metadata", meta, "must be an object")
    validate_object_meta(res, meta)
    return meta


# Kubernetes' qualified names (label and annotation keys): an optional DNS-subdomain
# prefix and "/", then a name of at most 63 characters.
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character"
)
_MAX_ANNOTATIONS_BYTES = 256 * 1024  # Kubernetes' TotalAnnotationSizeLimitB
_STRING_FIELDS = ("name", "generateName", "namespace", "resourceVersion", "creationTimestamp")


def _qualified_name_error(key: str) -> str | None:
    """Why `key` is not a qualified name (Kubernetes' `IsQualifiedName`), or None."""
    prefix, sep, name = key.rpartition("/")
    if sep:
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _SUBDOMAIN.match(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return _NAME_PART_MSG
    return None


def _string_map(res: Resource, meta: dict[str, Any], field: str) -> dict[str, str]:
    name = str(meta.get("name") or "")
    value = meta.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(
            res, name, f"metadata.{field}", value, "must be a map of string keys and values"
        )
    for k, v in value.items():
        if not isinstance(v, str):
            raise invalid(res, name, f"metadata.{field}[{k}]", v, "must be a string")
    return value


def validate_object_meta(res: Resource, meta: dict[str, Any]) -> None:
    """`ObjectMeta` as Kubernetes validates it (422 with the field path): the string
    fields are strings, labels and annotations are string-to-string maps with
    qualified-name keys (label values at most 63 characters of the label alphabet,
    annotations at most 256 KiB in all), finalizers a list of qualified names and
    ownerReferences a list of objects. An object that breaks these would be stored and
    then break the clients that list it (the official Python client does)."""
    name = str(meta.get("name") or "")
    for field in _STRING_FIELDS:
        value = meta.get(field)
        if value is not None and not isinstance(value, str):
            raise invalid(res, name, f"metadata.{field}", value, "must be a string")
    labels = _string_map(res, meta, "labels")
    for k, v in labels.items():
        why = _qualified_name_error(k)
        if why is not None:
            raise invalid(res, name, "metadata.labels", k, why)
        if len(v) > 63 or not _LABEL_VALUE.match(v):
            raise invalid(
                res,
                name,
                f"metadata.labels[{k}]",
                v,
                "a valid label must be an empty string or consist of at most 63 alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                "character",
            )
    annotations = _string_map(res, meta, "annotations")
    total = 0
    for k, v in annotations.items():
        why = _qualified_name_error(k.lower())
        if why is not None:
            raise invalid(res, name, "metadata.annotations", k, why)
        total += len(k.encode()) + len(v.encode())
    if total > _MAX_ANNOTATIONS_BYTES:
        raise invalid(
            res,
            name,
            "metadata.annotations",
            f"{total} bytes",
            f"may not be more than {_MAX_ANNOTATIONS_BYTES} bytes",
        )
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list):
            raise invalid(res, name, "metadata.finalizers", finalizers, "must be a list of strings")
        for i, f in enumerate(finalizers):
            why = _qualified_name_error(f) if isinstance(f, str) else "must be a string"
            if why is not None:
                raise invalid(res, name, f"metadata.finalizers[{i}]", f, why)
    owners = meta.get("ownerReferences")
    if owners is not None and (
        not isinstance(owners, list) or not all(isinstance(o, dict) for o in owners)
    ):
        raise invalid(res, name, "metadata.ownerReferences", owners, "must be a list of objects")
