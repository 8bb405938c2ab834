"""Whether a read is served from the cache or delegated to the store.

As upstream's `cacher/delegator.go`: the cache answers a read only when its answer is the
one the store would give, and the rules for that (see "Semantics for get and list" in
the Kubernetes API concepts) are kept apart from how the cache serves a read. The
decisions here may wait: asking for a revision the cache has not reached yet waits for
it (or fails with 504) rather than delegating, so a lagging cache does not move its
read load onto the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..index import Index, IndexSnapshot, decode
from ..storage import continue_token
from ..storage.interface import Object
from ..storage.options import ListOptions, ResourceVersionMatch, parse_resource_version
from .freshness import Freshness


class Delegator:
    """Answers "delegate" (True) or "serve from the cache" (False) for each read."""

    def __init__(
        self, freshness: Freshness, index: Index, snapshots: Mapping[int, IndexSnapshot]
    ) -> None:
        self._freshness = freshness
        self._index = index
        self._snapshots = snapshots

    async def get(self, resource_version: str) -> bool:
        """A consistent get goes to the store, as upstream's delegator sends it.

        One point read in the store costs less than proving the shared cache fresh: that
        proof waits for the cache to absorb every write to the resource, in every
        project, up to the store's revision, so a project writing flat out would slow
        every other project's consistent GETs (a 15x p99 in the fairness benchmark).
        Only a list, which the store would pay for per object, is worth that wait.
        """
        if resource_version == "":
            return True
        return not await self._freshness.fresh_enough(resource_version)

    async def get_list(self, key: str, opts: ListOptions) -> bool:
        """When False, the cache is at the revision to serve the list at (or holds the
        snapshot a continue token names), and stays there until the caller awaits."""
        freshness = self._freshness
        rv = parse_resource_version(opts.resource_version)
        if not opts.recursive:
            if not await freshness.fresh_enough(opts.resource_version):
                return True
            return (
                opts.resource_version_match == ResourceVersionMatch.EXACT
                and rv != freshness.resource_version
            )
        if opts.continue_:
            _start, list_rv = continue_token.decode(opts.continue_, continue_token.list_prefix(key))
            # Not (or no longer) held: the store serves it at that revision, or 410s.
            return list_rv not in self._snapshots
        if opts.resource_version_match == ResourceVersionMatch.EXACT:
            await freshness.wait_for(rv)
            return rv != freshness.resource_version
        if opts.resource_version_match == ResourceVersionMatch.UNSET and rv > 0 and opts.limit > 0:
            # Legacy semantics: a paginated list at N is a list at exactly N.
            await freshness.wait_for(rv)
            return rv != freshness.resource_version
        return not await freshness.fresh_enough(opts.resource_version)

    def update_suggestion(self, key: str, suggestion: Object | None) -> Object | None:
        """The cached object saves the store its first read of an update when the caller
        has no better guess; the store re-reads if it proves stale, so it need not be fresh."""
        if suggestion is None:
            cached = self._index.get(key)
            return decode(cached) if cached is not None else None
        return suggestion
