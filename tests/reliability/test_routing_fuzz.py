"""Fuzzing the project-path router (`tenantstore.server.routing`) with arbitrary paths.

Properties, for any path string (the server hands the router the raw request path
decoded as latin-1, so every byte sequence is some latin-1 string):

* `split_project` and `parse_path` either return or raise the routing layer's typed
  errors (`BadRequestError` / `NotFoundError`, both `StorageError`s): never anything else,
  never a hang (examples are bounded; a hang would time the test out).
* A returned project id is always a valid DNS-1123 label (checked here with an
  independent regex, not only with the library's own validator).
* A raw path under ``/projects`` never comes back in the root scope.
* A path that is served in the root scope never names ``projects`` as its first segment
  once decoded (an encoded ``/%70rojects/...`` cannot reach a project's or root data).
* Percent-encoded ``/`` or ``..`` in the project segment never moves the request: it
  is a 400.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tenantstore.server.registry import ResourceRegistry
from tenantstore.server.routing import Kind, Target, parse_path, split_project
from tenantstore.storage.errors import BadRequestError, NotFoundError

DNS_LABEL = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
REGISTRY = ResourceRegistry.with_builtins()
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)

# Pieces that make interesting paths more likely than uniform text would.
SEGMENTS = st.sampled_from(
    [
        "projects",
        "control-plane",
        "api",
        "apis",
        "v1",
        "namespaces",
        "default",
        "configmaps",
        "secrets",
        "namespaces",
        "p1",
        "P1",
        "a_b",
        "-a",
        "a-",
        "x" * 63,
        "x" * 64,
        "..",
        ".",
        "%2e%2e",
        "%2E%2E",
        "%2F",
        "%2f",
        "%00",
        "%",
        "%zz",
        "%70rojects",
        "p%31",
        "%C3%A9",
        "\x00",
        "\xff",
        "\u00e9",
        "",
        "healthz",
        "metrics",
        "version",
        "openapi",
        "example.com",
        "status",
    ]
)
JOINED = st.lists(st.one_of(SEGMENTS, st.text(max_size=12)), max_size=10).map(
    lambda segs: "/" + "/".join(segs)
)
PROJECT_PATHS = st.tuples(
    st.one_of(SEGMENTS, st.text(max_size=70)),
    st.lists(st.one_of(SEGMENTS, st.text(max_size=8)), max_size=7),
).map(lambda t: f"/projects/{t[0]}/control-plane/" + "/".join(t[1]))
LATIN1 = st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
ANY_PATH = st.one_of(JOINED, PROJECT_PATHS, LATIN1, st.text(max_size=200))


def route(path: str) -> tuple[str | None, Target] | None:
    """The router's answer for `path`: (project, target), or None for a typed 4xx error.
    Any other exception propagates and fails the test."""
    try:
        project, rest = split_project(path)
    except (BadRequestError, NotFoundError):
        return None
    # The project is a label whenever one is returned.
    if project is not None:
        assert DNS_LABEL.match(project), (path, project)
    # A raw path under /projects never falls back to the root scope.
    if path == "/projects" or path.startswith("/projects/"):
        assert project is not None, path
    try:
        target = parse_path(rest, REGISTRY)
    except (BadRequestError, NotFoundError):
        return None
    assert isinstance(target, Target)
    if target.kind in (Kind.COLLECTION, Kind.OBJECT):
        assert target.resource is not None
        # Namespace and name segments never carry key-shape-changing content.
        for seg in (target.namespace, target.name):
            if seg:
                assert "/" not in seg and seg not in (".", "..") and seg.isprintable(), path
    if project is None:
        decoded = unquote(path).strip("/").split("/")
        assert decoded[0] != "projects", path
    return project, target


@FUZZ
@given(ANY_PATH)
@example("/projects/p1/control-plane/api/v1/namespaces/default/configmaps")
@example("/projects/a%2Fb/control-plane/api/v1/configmaps")
@example("/projects/%2e%2e/control-plane/api/v1/configmaps")
@example("/%70rojects/p1/control-plane/api/v1/configmaps")
@example("//projects/p1/control-plane/api/v1/configmaps")
@example("/projects//control-plane/api/v1/configmaps")
@example("/projects")
@example("/projects/")
@example("/projects/p1")
@example("/projects/p1/control-plane")
@example("/projects/p1/control-plane/../../api/v1/configmaps")
@example("/projects/p1/control-plane/api/v1/namespaces/%2e%2e/configmaps/x")
@example("/projects/p1/control-plane/api/v1/namespaces/a%2Fb/configmaps/x")
@example("/projects/p%00/control-plane/api/v1/configmaps")
@example("/projects/" + "a" * 100_000 + "/control-plane/api/v1/configmaps")
@example("/api/v1/" + "/".join(["namespaces"] * 20_000))
def test_router_never_crashes_nor_escapes(path: str) -> None:
    route(path)


@FUZZ
@given(st.text(max_size=80))
def test_any_project_text_is_a_label_or_400(project: str) -> None:
    """Whatever the project segment (percent-encoded the way a client would), the
    request stays in that project when it is a valid label and is a 400 otherwise; it
    never reaches another project or the root scope."""
    path = f"/projects/{quote(project, safe='')}/control-plane/api/v1/configmaps"
    try:
        got, rest = split_project(path)
    except BadRequestError:
        assert not DNS_LABEL.match(project), project
        return
    assert got == project
    assert DNS_LABEL.match(project)
    assert rest == "/api/v1/configmaps"
    target = parse_path(rest, REGISTRY)
    assert target.kind == Kind.COLLECTION and target.namespace is None


@FUZZ
@given(
    project=st.from_regex(DNS_LABEL, fullmatch=True),
    namespace=st.text(max_size=20),
    name=st.text(min_size=1, max_size=20),
)
def test_encoded_object_paths_resolve_to_one_object_or_404(
    project: str, namespace: str, name: str
) -> None:
    """A client-encoded namespace/name routes to exactly that object, or is a 404/400:
    an encoded '/' or '..' never re-targets the request at another key."""
    path = (
        f"/projects/{project}/control-plane/api/v1/namespaces/"
        f"{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"
    )
    answer = route(path)
    if answer is None:
        return
    got_project, target = answer
    assert got_project == project
    assert target.kind == Kind.OBJECT
    assert (target.namespace, target.name) == (namespace, name)
