"""The Python facades re-export the Rust core's names instead of redefining them.

A segment name or frame constant defined twice could drift between the rewriting in Rust and
the Python code that recognises scoped keys; these checks pin each facade to `_native`.
"""

from __future__ import annotations

from tenantstore import _native, frames, keys, kubeproto


def test_native_all_lists_every_public_export() -> None:
    public = {name for name in vars(_native) if not name.startswith("_")}
    assert set(_native.__all__) == public


def test_key_segments_come_from_native() -> None:
    assert keys.CLUSTERS_SEGMENT is _native.CLUSTERS_SEGMENT
    assert keys.ROOT_SEGMENT is _native.ROOT_SEGMENT
    assert (keys.CLUSTERS_SEGMENT, keys.ROOT_SEGMENT) == ("clusters", "root")


def test_key_segments_match_rewriting() -> None:
    prefix = "/registry/configmaps"
    assert keys.scope_prefix(prefix, "p1") == f"{prefix}/{keys.CLUSTERS_SEGMENT}/p1/"
    assert keys.scope_prefix(prefix, None) == f"{prefix}/{keys.ROOT_SEGMENT}/"


def test_frame_constants_come_from_native() -> None:
    assert frames.FRAME_MAGIC is _native.FRAME_MAGIC
    assert frames.FRAME_VERSION is _native.FRAME_VERSION


def test_protobuf_magic_comes_from_native() -> None:
    assert kubeproto.MAGIC is _native.PROTOBUF_MAGIC
    assert kubeproto.MAGIC == b"k8s\x00"
