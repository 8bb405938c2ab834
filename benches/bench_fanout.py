"""Watch fan-out: 1,000 watchers on one project against 10, per event delivered.

Run (under a minute; prints a plain-text table)::

    python benches/bench_fanout.py --out bench-results/fanout.json

`--events` ConfigMaps are written through a `Cacher` over a SQLite store, and the cache
events its reflector makes (objects as cached bytes) are recorded. Each cell then
dispatches those events, fresh (nothing encoded yet), to `N` watchers of that project
(10 and 1,000, cells alternated over `--rounds` rounds) through the cacher's
`WatcherTable`, and drains every watcher as the server does (each event's JSON line taken
with `encode_line`, as `server/watchstream.py` does). Per cell: the process CPU time of
the dispatch and the drain (the write path costs the same whatever `N`, so it is left
out), and how many event lines were encoded (`tenantstore.index.event_encodes`).

Targets (issue 16): the encodes per event do not grow with `N` (one), and the CPU per
delivered event with 1,000 watchers is within 1.2x of the 10-watcher case.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tenantstore.backends.sqlite import SqliteKV
from tenantstore.cacher import CacheEvent, Cacher, WatcherTable
from tenantstore.cacher.watchers import CacheWatcher
from tenantstore.index import event_encodes
from tenantstore.storage import QueueWatch
from tenantstore.storage.selectors import EVERYTHING
from tenantstore.store import KVStorage

PREFIX = "/registry/configmaps"
KIND, API_VERSION = "ConfigMap", "v1"


def configmap(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": "p1", "uid": str(uuid.uuid4())},
        "data": {"payload": "x" * 400},
    }


async def recorded_events(base: Path, events: int) -> list[CacheEvent]:
    """`events` cache events as the reflector makes them (objects as cached bytes)."""
    kv = await SqliteKV.open(str(base / "fanout.db"))
    store = KVStorage(kv)
    cacher = Cacher(store, PREFIX, bookmark_interval=0)
    seen: list[CacheEvent] = []
    cacher.add_listener(seen.append)
    await cacher.start()
    await cacher.wait_ready()
    last = 0
    for i in range(events):
        created = await store.create(f"{PREFIX}/p1/cm-{i}", configmap(f"cm-{i}"))
        last = int(created["metadata"]["resourceVersion"])
    await cacher.wait_for_revision(last, 30)
    await cacher.stop()
    await store.close()
    return seen


def cell(events: list[CacheEvent], n: int) -> tuple[float, int]:
    """Dispatch every event to `n` watchers of the project and drain them as the server
    does; the process CPU time and the number of event lines encoded."""
    table = WatcherTable(lambda w: None)
    watchers = []
    for _ in range(n):
        w = CacheWatcher(QueueWatch(len(events) + 16), f"{PREFIX}/p1/", False, EVERYTHING, False, 0)
        table.add(w)
        watchers.append(w)
    fresh = [dataclasses.replace(ev, _out={}) for ev in events]  # nothing encoded yet
    encodes0, cpu0 = event_encodes(), time.process_time()
    for ev in fresh:
        table.dispatch(ev)
    for w in watchers:
        buf = w.queue._buf  # drained directly: the bench measures the cache, not asyncio
        while buf:
            buf.popleft().encode_line(KIND, API_VERSION)
    return time.process_time() - cpu0, event_encodes() - encodes0


def bench(args: argparse.Namespace) -> dict[str, Any]:
    cpu: dict[int, list[float]] = {n: [] for n in args.watchers}
    encodes: dict[int, list[int]] = {n: [] for n in args.watchers}
    with tempfile.TemporaryDirectory(prefix="tenantstore-fanout-") as d:
        events = asyncio.run(recorded_events(Path(d), args.events))
    for rnd in range(args.rounds):
        order = args.watchers if rnd % 2 == 0 else args.watchers[::-1]
        for n in order:
            c, e = cell(events, n)
            cpu[n].append(c)
            encodes[n].append(e)
    med = {n: sorted(v)[len(v) // 2] for n, v in cpu.items()}
    per_event = {n: med[n] / (args.events * n) for n in args.watchers}
    lo, hi = min(args.watchers), max(args.watchers)
    return {
        "args": vars(args),
        "cpus": os.cpu_count(),
        "cpu_seconds": {str(n): v for n, v in cpu.items()},
        "encodes": {str(n): v for n, v in encodes.items()},
        "cpu_per_delivered_event_us": {str(n): v * 1e6 for n, v in per_event.items()},
        "ratio": per_event[hi] / per_event[lo],
        "target": 1.2,
    }


def table(res: dict[str, Any]) -> str:
    a = res["args"]
    lines = [
        f"{a['events']} events, watchers on one project, SQLite, {a['rounds']} rounds "
        f"(cells alternated), process CPU time",
        "",
        f"{'watchers':>9}{'CPU s (median)':>16}{'encodes/event':>15}{'CPU us / delivered':>20}",
    ]
    for n, cpus in res["cpu_seconds"].items():
        med = sorted(cpus)[len(cpus) // 2]
        enc = max(res["encodes"][n]) / a["events"]
        per = res["cpu_per_delivered_event_us"][n]
        lines.append(f"{n:>9}{med:>16.4f}{enc:>15.2f}{per:>20.2f}")
    verdict = "met" if res["ratio"] <= res["target"] else "MISSED"
    lines += [
        "",
        f"per delivered event, most / fewest watchers: {res['ratio']:.2f}x "
        f"(target <= {res['target']}x: {verdict})",
    ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--watchers", type=lambda t: [int(x) for x in t.split(",")], default=[10, 1000])
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    res = bench(args)
    print(table(res))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")


def test_fanout() -> None:
    args = parse(["--rounds", "1", "--events", "20", "--watchers", "2,20"])
    print("\n" + table(bench(args)))


if __name__ == "__main__":
    main()
