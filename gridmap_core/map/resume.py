"""Taking on a map from its journal: what ``gridmap attach`` gives a new monitor.

The journal holds every job of the map: how to run it (its spec and arguments),
its state, scheduler job and attempt, and the results kept so far. :func:`rebuild`
reads it back into the monitor's terms: the jobs that ended, to be told to the map's
sink at once, and :class:`~gridmap_core.map.tasks.Task` objects for the rest, under
the same ids and attempts, so that their runners, still waiting for a monitor, are
answered as the old monitor would have answered them.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gridmap_core.backend import Batch, DeathKind, Failure, JobSpec, Sink
from gridmap_core.journal.store import Journal, TaskRow
from gridmap_core.map.tasks import QUEUED, RUNNING, Task
from gridmap_core.model.serialization import loads
from gridmap_core.wire.messages import decode_result

__all__ = ["Rebuilt", "Slots", "deliver_ended", "rebuild"]


class Slots:
    """A sink for the jobs of one spec, each at its place (slot) in the map's sink."""

    def __init__(self, sink: Sink, slots: Sequence[int], names: Sequence[str]) -> None:
        self.sink = sink
        self.slots = slots
        self.names = names  # each slot's job name, as the journal has it

    def claim(self, start: int, stop: int) -> Sequence[int]:
        return range(start, stop)

    def started(self, index: int, host_name: str, job_id: str = "") -> None:
        self.sink.started(self.slots[index], host_name, job_id)

    def succeeded(self, indices: Sequence[int], values: Sequence[Any], host_name: str) -> None:
        self.sink.succeeded([self.slots[index] for index in indices], values, host_name)

    def failed(self, index: int, failure: Failure) -> None:
        self.sink.failed(self.slots[index], failure)

    def heartbeat(self, index: int, heartbeat: Mapping[str, Any]) -> None:
        self.sink.heartbeat(self.slots[index], heartbeat)

    def resubmitted(self, index: int, cause_of_death: str,
                    kind: DeathKind | None = None) -> None:
        self.sink.resubmitted(self.slots[index], cause_of_death, kind)

    def job_name(self, index: int) -> str | None:
        return self.names[self.slots[index]]

    def waiting(self, index: int, note: str) -> None:
        self.sink.waiting(self.slots[index], note)


@dataclass
class Rebuilt:
    """A map read back from its journal."""

    size: int  # jobs in the map
    names: list[str]  # each slot's job name
    ended: list[TaskRow] = field(default_factory=list)  # jobs that ended
    live: list[Task] = field(default_factory=list)  # jobs to go on with
    functions: dict[int, bytes] = field(default_factory=dict)  # spec key -> function
    slots: dict[int, int] = field(default_factory=dict)  # task id -> slot


def rebuild(journal: Journal, sink: Sink) -> Rebuilt:
    """The map of ``journal``, its unfinished jobs reporting to ``sink`` by slot (the
    jobs' order in the map)."""
    rows = journal.tasks()  # in the map's order
    rebuilt = Rebuilt(len(rows), [row.name for row in rows])
    rebuilt.slots = {row.id: slot for slot, row in enumerate(rows)}
    specs = journal.specs()
    by_spec: dict[int, list[TaskRow]] = {}
    for row in rows:
        if row.state in ("queued", "running"):
            by_spec.setdefault(row.spec, []).append(row)
        else:
            rebuilt.ended.append(row)
    now = time.monotonic()
    for key, members in by_spec.items():
        spec_bytes, function = specs[key]
        spec: JobSpec = pickle.loads(spec_bytes)
        rebuilt.functions[spec.key] = function
        inputs = [loads(journal.inputs(row.id)) for row in members]
        kwargs = [kw for _, kw in inputs]
        batch = Batch(spec, [tuple(args) for args, _ in inputs],
                      kwargs if any(kw is not None for kw in kwargs) else None,
                      Slots(sink, [rebuilt.slots[row.id] for row in members], rebuilt.names))
        for index, row in enumerate(members):
            running = row.state == "running"
            # Silence counts from now: its runner may be waiting for a monitor.
            rebuilt.live.append(Task(row.id, batch, index, attempt=row.attempt,
                                     job_id=row.job_id, state=RUNNING if running else QUEUED,
                                     last_seen=now, running_since=now if running else None,
                                     host_name=row.host, resubmits=row.resubmits))
    return rebuilt


def deliver_ended(journal: Journal, rebuilt: Rebuilt, sink: Sink) -> list[tuple[int, int]]:
    """Tell ``sink`` of the jobs that ended before: results as kept, deaths and
    cancellations with their causes. Returns (task id, attempt) of each accepted
    result, so a runner retrying one is acknowledged."""
    accepted = []
    for row in rebuilt.ended:
        slot = rebuilt.slots[row.id]
        payload = journal.result(row.id) if row.state in ("succeeded", "failed") else None
        if payload is not None:
            accepted.append((row.id, row.attempt))
            outcome = decode_result(payload)
            host = outcome.host_name or row.host
            if outcome.ok:
                sink.succeeded([slot], [outcome.value], host)
            else:
                sink.failed(slot, Failure(outcome.exception, outcome.traceback, host,
                                          None, row.resubmits, job_id=row.job_id))
            continue
        cause = row.cause or ("cancelled" if row.state == "cancelled"
                              else "its result was lost with its session directory")
        kind = DeathKind.CANCELLED if row.state == "cancelled" else _kind(row.kind)
        sink.failed(slot, Failure(None, None, row.host, cause, row.resubmits,
                                  job_id=row.job_id, death_kind=kind))
    return accepted


def _kind(text: str | None) -> DeathKind:
    try:
        return DeathKind(text)
    except ValueError:
        return DeathKind.OTHER
