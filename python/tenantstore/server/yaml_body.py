"""Apply bodies: `application/apply-patch+yaml` carries YAML (JSON being YAML, kubectl
sends JSON), decoded to what the equivalent JSON would be.

PyYAML's safe loader is YAML 1.1, as the Go `yaml` package the API server converts
with (`yes` is a boolean there too), but it would also make dates and times of plain
scalars: here they stay strings, as in the JSON Kubernetes converts YAML to. Aliases are
refused: nothing Kubernetes serves needs them, and a few nested ones describe a document
far larger than its bytes.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import yaml

from ..storage.errors import BadRequestError

__all__ = ["decode_yaml"]


class _Loader(yaml.SafeLoader):
    """The safe loader without timestamps and without aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases are not supported in apply bodies", event.start_mark
            )
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 200:
        raise BadRequestError("the apply body is nested too deeply")
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else _key(k)): _jsonable(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequestError(f"the apply body holds a number JSON cannot: {value}")
    if isinstance(value, bytes):
        raise BadRequestError("the apply body holds binary data (!!binary)")
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    raise BadRequestError(f"the apply body has a key JSON cannot hold: {key!r}")


def decode_yaml(raw: bytes) -> Any:
    """The body as JSON values; 400 for anything that is not one YAML (or JSON) document."""
    if not raw.strip():
        raise BadRequestError("request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequestError("request body is not valid UTF-8") from None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise BadRequestError(f"error decoding YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise BadRequestError("the apply body is nested too deeply") from None
    return _jsonable(doc)
