"""A map whose jobs the test lets go one by one, watched through its status page.

Each job prints a line, waits until the test creates its release file, and prints
another line as it ends; job ``fail`` then raises. Job ``die``, on its first attempt,
kills its own process before it prints anything (the monitor then resubmits it). The
map runs in a thread of the test process on the local backend in runner mode (or on a
cluster), so its jobs send real heartbeats (every 0.3 s here).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from gridmap_core import GridMapExecutor, Job

SETTINGS = {"HEARTBEAT_FREQUENCY": 0.3, "MAX_IDLE_HEARTBEATS": 0, "CHECK_FREQUENCY": 1}


def held(index: int, folder: str, fail: int, die: int = -1) -> int:
    if index == die and not (Path(folder) / f"died{index}").exists():
        (Path(folder) / f"died{index}").touch()
        os.kill(os.getpid(), signal.SIGKILL)
    print(f"job {index} is waiting", flush=True)
    release = Path(folder) / f"release{index}"
    while not release.exists():
        time.sleep(0.05)
    print(f"job {index} ends")  # unflushed: the runner must flush it into the log
    if index == fail:
        raise ValueError(f"job {index} was told to fail")
    return index * 10


class HeldMap:
    """``count`` held jobs on ``processes`` workers, with a status page."""

    def __init__(self, folder: Path, count: int = 3, processes: int = 2, fail: int = -1,
                 backend: str = "local", die: int = -1, **settings: Any) -> None:
        self.folder = folder
        self.count = count
        self.fail = fail
        self.die = die
        local = backend == "local"
        cluster: dict[str, Any] = {} if local else {"mem_free": "100M"}
        self.executor = GridMapExecutor(backend, max_processes=processes, status_page=True,
                                        settings={**SETTINGS, **settings},
                                        backend_options={"mode": "runner"} if local else None,
                                        temp_dir=None if local else str(folder),
                                        require_cluster=not local, name="held",
                                        **cluster)
        self.results: list[Any] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="held-map", daemon=True)

    def _run(self) -> None:
        # As grid_map runs a map whose jobs someone watches: one batch of Job objects.
        jobs = [Job(held, [index, str(self.folder), self.fail, self.die],
                    **self.executor.runtime.job_options.as_dict())
                for index in range(self.count)]
        try:
            self.executor.run_jobs(jobs, name="held", on_failure="return")
            self.results = [job.ret for job in jobs]
        except BaseException as error:
            self.error = error

    def __enter__(self) -> HeldMap:
        self.executor.__enter__()
        self._thread.start()
        deadline = time.monotonic() + 10
        while self.executor.status is None or self.executor.status.url is None:
            assert time.monotonic() < deadline, "the status page did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for index in range(self.count):
            self.release(index)
        self._thread.join(30)
        self.executor.__exit__(kind, error, traceback)

    @property
    def url(self) -> str:
        assert self.executor.status is not None and self.executor.status.url is not None
        return self.executor.status.url

    @property
    def base(self) -> str:
        return self.url.split("/?")[0]

    @property
    def token(self) -> str:
        return self.url.split("token=")[1]

    def release(self, index: int) -> None:
        (self.folder / f"release{index}").touch()

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        """GET ``path`` with the map's token (or ``token``): status and body."""
        given = self.token if token is None else token
        separator = "&" if "?" in path else "?"
        url = f"{self.base}{path}{separator}token={given}" if given else f"{self.base}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def jobs(self) -> dict[int, dict[str, Any]]:
        status, body = self.get("/api/jobs")
        assert status == 200, body
        return {row["index"]: row for row in json.loads(body)["jobs"]}

    def wait(self, condition: Any, timeout: float = 20.0) -> dict[int, dict[str, Any]]:
        """Poll the API until ``condition(rows)`` holds; the rows it held for."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.jobs()
            if condition(rows):
                return rows
            assert time.monotonic() < deadline, rows
            time.sleep(0.1)
