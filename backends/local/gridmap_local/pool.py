"""The local backend's worker pool: long-lived worker processes fed chunks of a batch.

One dispatcher thread per session sends a chunk to each idle worker, gathers the
replies and hands them to the batch's sink. Chunks are sized like
``multiprocessing.Pool.map``'s (a quarter of a fair share per worker), so ten
thousand trivial calls cost a few dozen messages. A worker that dies takes only the
call it was running with it: that call is run again up to NUM_RESUBMITS times and
then fails with the cause; the rest of its chunk is sent to a fresh worker.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gridmap_core.backend import Batch, DeathKind, Failure, SessionOptions
from gridmap_core.model.serialization import dumps as dumps_spec
from gridmap_core.wire.exits import name_of_signal

from . import worker as worker_module
from .plugin import START_METHODS

__all__ = ["START_METHODS", "LocalSession"]

logger = logging.getLogger(__name__)
_TERMINATE_GRACE = 2.0  # seconds a worker gets to exit after SIGTERM before SIGKILL


def _describe_exit(exitcode: int | None) -> tuple[str, DeathKind]:
    """How a worker process ended (its ``multiprocessing`` exit code), as a cause of
    death and its kind: unlike a runner's, a worker's exit statuses carry no meaning of
    their own, so every exit is one kind."""
    if exitcode is None:  # its pipe closed, yet it has not ended
        return "local worker process vanished", DeathKind.VANISHED
    if exitcode < 0:
        return f"local worker process killed by {name_of_signal(-exitcode)}", DeathKind.KILLED
    return f"local worker process exited with status {exitcode}", DeathKind.EXITED


@dataclass
class _Work:
    """A queued slice of a batch: indices still to run; ``claimed`` once started."""

    batch_id: int
    indices: Sequence[int]
    claimed: bool = False


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    slot: Any
    specs_sent: set[int] = field(default_factory=set)
    # batch id -> indices sent, not yet answered
    pending: dict[int, set[int]] = field(default_factory=dict)
    # True from sending a message until its final reply: partial replies can empty
    # ``pending`` before the worker is ready for more.
    in_flight: bool = False

    @property
    def busy(self) -> bool:
        return self.in_flight


class LocalSession:
    """Worker processes and the thread that feeds them."""

    def __init__(self, options: SessionOptions) -> None:
        # One of START_METHODS, or unset: declared in gridmap_local.plugin, checked by
        # the core.
        method = str(options.options.get("start_method") or self._default_start_method())
        self._context: Any = multiprocessing.get_context(method)
        self.max_workers = options.max_processes
        self.host_name = socket.gethostname()
        self.max_resubmits = int(options.settings["NUM_RESUBMITS"])
        self._resubmits: dict[tuple[int, int], int] = {}  # (batch id, index) -> count
        self._lock = threading.Lock()
        self._queue: collections.deque[_Work] = collections.deque()
        self._batches: dict[int, tuple[Batch, int]] = {}  # id -> (batch, chunk size)
        self._remaining: dict[int, int] = {}  # id -> calls not yet answered
        self._next_batch = 0
        self._queued = 0  # calls waiting in the queue
        self._workers: list[_Worker] = []
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(
            target=self._serve, name="gridmap-local-dispatch", daemon=True
        )
        self._thread_started = False

    @staticmethod
    def _default_start_method() -> str:
        # fork starts a worker in about a millisecond; elsewhere spawn is the safe choice
        return "fork" if sys.platform.startswith("linux") else "spawn"

    # -- called from the submitting thread ----------------------------------------

    def submit(self, batch: Batch) -> None:
        if not len(batch):
            return
        with self._lock:
            if self._closing:
                raise RuntimeError("the local backend session is closed")
            batch_id = self._next_batch
            self._next_batch += 1
            chunk = max(1, math.ceil(len(batch) / (4 * self.max_workers)))
            self._batches[batch_id] = (batch, chunk)
            self._remaining[batch_id] = len(batch)
            self._queue.append(_Work(batch_id, range(len(batch))))
            self._queued += len(batch)
            wanted = min(self.max_workers, len(self._workers) + self._queued)
            while len(self._workers) < wanted:
                self._workers.append(self._start_worker())
            if not self._thread_started:
                self._thread.start()
                self._thread_started = True
        self._wake()

    def close(self, cancel: bool = False) -> None:
        with self._lock:
            if self._closing:
                return
            self._closing = True
            started = self._thread_started
        self._wake()
        if started:
            self._thread.join()
        for worker in self._workers:
            if cancel and worker.process.is_alive():
                worker.process.terminate()
            else:
                with contextlib.suppress(OSError):  # it may have died already
                    worker.conn.send_bytes(pickle.dumps(None))
        for worker in self._workers:
            worker.process.join(_TERMINATE_GRACE)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the dispatcher thread ------------------------------------------------------

    def _wake(self) -> None:
        # A full pipe means the dispatcher is waking anyway.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _start_worker(self) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        slot = self._context.RawArray("q", 2)
        process = self._context.Process(
            target=worker_module.main, args=(theirs, slot), name="gridmap-local-worker", daemon=True
        )
        process.start()
        theirs.close()
        return _Worker(process, ours, slot)

    def _serve(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._closing:
                        return
                    idle = [w for w in self._workers if not w.busy]
                for worker in idle:
                    if not self._dispatch(worker):
                        break
                busy = [w for w in self._workers if w.busy]
                waitables: list[Any] = [self._wake_r]
                waitables += [w.conn for w in busy]
                waitables += [w.process.sentinel for w in self._workers]
                for ready in multiprocessing.connection.wait(waitables):
                    self._handle(ready)
        except Exception as error:
            logger.exception("the local backend's dispatcher failed")
            self._fail_everything(f"internal error in the local backend: {error}")

    def _handle(self, ready: Any) -> None:
        if ready == self._wake_r:
            os.read(self._wake_r, 4096)
            return
        for worker in list(self._workers):
            if ready is worker.conn:
                try:
                    data = worker.conn.recv_bytes()
                except (EOFError, OSError):
                    self._lost(worker)
                    return
                self._deliver(worker, pickle.loads(data))
                return
            if ready == worker.process.sentinel:
                # Read what it sent before it died, then account for the rest.
                while worker.busy and worker.conn.poll():
                    try:
                        self._deliver(worker, pickle.loads(worker.conn.recv_bytes()))
                    except (EOFError, OSError):
                        break
                self._lost(worker)
                return

    def _next_work(self) -> list[tuple[Batch, int, Sequence[int]]]:
        """Take the next chunk off the queue, claimed from the sinks, as segments.

        A chunk is a slice of one batch, sized as Pool.map sizes its chunks; when
        calls were submitted one at a time, consecutive small batches share a chunk,
        so a loop of ``executor.submit`` costs a few messages, not one per call.
        """
        segments: list[tuple[Batch, int, Sequence[int]]] = []
        with self._lock:
            budget = -1
            while self._queue and budget != 0:
                work = self._queue[0]
                batch, chunk = self._batches[work.batch_id]
                if budget < 0:
                    budget = max(chunk, math.ceil(self._queued / (4 * self.max_workers)))
                take, rest = work.indices[:budget], work.indices[budget:]
                if len(rest):
                    work.indices = rest
                else:
                    self._queue.popleft()
                self._queued -= len(take)
                budget -= len(take)
                if work.claimed:
                    wanted: Sequence[int] = take
                else:
                    wanted = batch.sink.claim(take[0], take[-1] + 1)
                    if len(take) - len(wanted):
                        self._settle(work.batch_id, len(take) - len(wanted))
                if len(wanted):
                    for index in wanted:
                        batch.sink.started(index, self.host_name)
                    segments.append((batch, work.batch_id, wanted))
        return segments

    def _dispatch(self, worker: _Worker) -> bool:
        segments = self._next_work()
        if not segments:
            return False
        new_specs = []
        message_segments = []
        for batch, batch_id, indices in segments:
            spec = batch.spec
            if spec.key not in worker.specs_sent:
                new_specs.append((spec.key, dumps_spec(spec)))
                worker.specs_sent.add(spec.key)
            if isinstance(indices, range):
                args = batch.args[indices.start : indices.stop]
                kwargs = batch.kwargs[indices.start : indices.stop] if batch.kwargs else None
            else:
                args = [batch.args[i] for i in indices]
                kwargs = [batch.kwargs[i] for i in indices] if batch.kwargs else None
            message_segments.append((spec.key, batch_id, indices, args, kwargs))
            worker.pending.setdefault(batch_id, set()).update(indices)
        worker.in_flight = True
        worker.conn.send_bytes(worker_module.dumps((new_specs, message_segments)))
        return True

    def _deliver(self, worker: _Worker, message: Any) -> None:
        final, parts = message
        for batch_id, indices, values, failures in parts:
            if not len(indices) and not failures:
                continue
            batch, _ = self._batches[batch_id]
            if len(indices):
                batch.sink.succeeded(indices, values, self.host_name)
            for index, error, text in failures:
                batch.sink.failed(index, Failure(error, text, self.host_name))
            pending = worker.pending.get(batch_id, set())
            pending.difference_update(indices)
            pending.difference_update(f[0] for f in failures)
            self._settle(batch_id, len(indices) + len(failures))
        if final:
            worker.pending.clear()
            worker.in_flight = False

    def _settle(self, batch_id: int, count: int) -> None:
        self._remaining[batch_id] -= count
        if self._remaining[batch_id] <= 0:
            # Drop the batch so its arguments and results can be freed.
            del self._remaining[batch_id]
            del self._batches[batch_id]
            for key in [key for key in self._resubmits if key[0] == batch_id]:
                del self._resubmits[key]

    def _lost(self, worker: _Worker) -> None:
        """A worker died: resubmit the call it was running up to NUM_RESUBMITS times,
        then fail it; requeue the rest of its chunk."""
        worker.process.join(1.0)
        cause, kind = _describe_exit(worker.process.exitcode)
        busy = worker.busy
        with self._lock:
            self._workers.remove(worker)
            running = (worker.slot[worker_module.SLOT_BATCH], worker.slot[worker_module.SLOT_INDEX])
            known = running[1] in worker.pending.get(running[0], ())
            for batch_id, pending in worker.pending.items():
                if not pending:
                    continue
                batch, _ = self._batches[batch_id]
                if known:
                    culprits = [running[1]] if running[0] == batch_id else []
                else:  # it died between calls or while reading: no one call to blame
                    culprits = sorted(pending)
                again = []
                for index in culprits:
                    count = self._resubmits.get((batch_id, index), 0)
                    if count < self.max_resubmits and not self._closing:
                        self._resubmits[(batch_id, index)] = count + 1
                        batch.sink.resubmitted(index, cause, kind)
                        again.append(index)
                    else:
                        self._resubmits.pop((batch_id, index), None)
                        batch.sink.failed(index, Failure(None, None, self.host_name, cause,
                                                         num_resubmits=count, death_kind=kind))
                self._settle(batch_id, len(culprits) - len(again))
                rest = sorted(pending.difference(culprits).union(again))
                if rest:
                    self._queue.appendleft(_Work(batch_id, rest, claimed=True))
                    self._queued += len(rest)
            worker.pending.clear()
            worker.in_flight = False
            if not self._closing and self._queue and len(self._workers) < self.max_workers:
                self._workers.append(self._start_worker())
        worker.conn.close()
        logger.warning("%s; %s", cause, "its job failed" if busy else "it was idle")

    def _fail_everything(self, cause: str) -> None:
        # The dispatcher itself failed: no kind of death says more than its cause.
        failure = Failure(None, None, self.host_name, cause, death_kind=DeathKind.OTHER)
        with self._lock:
            for worker in self._workers:
                for batch_id, pending in worker.pending.items():
                    batch, _ = self._batches[batch_id]
                    for index in pending:
                        batch.sink.failed(index, failure)
                worker.pending.clear()
                worker.in_flight = False
            while self._queue:
                work = self._queue.popleft()
                batch, _ = self._batches[work.batch_id]
                indices = (
                    work.indices
                    if work.claimed
                    else batch.sink.claim(work.indices[0], work.indices[-1] + 1)
                )
                for index in indices:
                    batch.sink.failed(index, failure)
