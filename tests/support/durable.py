"""What the tests of maps that outlive their submitter share: a submitting process to
kill, and what to check afterwards (results, executions, what is left running)."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gridmap_core.journal.store import Journal
from gridmap_core.wire import beacon
from gridmap_core.wire.messages import decode_result
from tests import PROJECT_ROOT

#: What the session directory of a map that ended well holds while MAP_KEEP_TIME keeps
#: it: the journal and the small files beside it; no key, no logs, no results.
ENDED_SESSION = frozenset({"ended", "journal.sqlite", "launched", "monitor.json",
                           "submitter.json"})

#: Settings (as environment variables) that make the tests' maps quick to watch.
QUICK = {"CHECK_FREQUENCY": "1", "HEARTBEAT_FREQUENCY": "1", "MAX_IDLE_HEARTBEATS": "0",
         "SEND_ERROR_MAIL": "False"}

SCRIPT = """
from gridmap_core import grid_map
from tests.support.durable_jobs import counted_square

grid_map(counted_square, [[{marks!r}, x, {seconds!r}] for x in range({count})],
         name={name!r}, backend={backend!r}, temp_dir={temp!r})
"""


@dataclass
class Submitter:
    """A map submitted by a process of its own, in ``root``."""

    root: Path
    name: str
    backend: str
    count: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def temp_dir(self) -> Path:
        return self.root / "temp"

    @property
    def marks(self) -> Path:
        return self.root / "marks"

    @property
    def output(self) -> Path:
        return self.root / "submitter.out"

    def start(self, seconds: float) -> None:
        self.temp_dir.mkdir(exist_ok=True)
        self.marks.mkdir(exist_ok=True)
        script = self.root / "submit.py"
        script.write_text(textwrap.dedent(SCRIPT.format(
            marks=str(self.marks), seconds=seconds, count=self.count, name=self.name,
            backend=self.backend, temp=str(self.temp_dir))))
        with open(self.output, "wb") as sink:
            self.process = subprocess.Popen([sys.executable, str(script)], cwd=PROJECT_ROOT,
                                            stdout=sink, stderr=subprocess.STDOUT,
                                            env=self.env)

    def session(self) -> Path:
        """The map's session directory (there is one, once the map started)."""
        (found,) = [path for path in self.temp_dir.iterdir() if path.name.startswith("gridmap-")]
        return found

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s; " \
                f"the submitter said: {self.output.read_text()[-3000:]}"
            time.sleep(0.2)

    def succeeded(self) -> set[int]:
        """The inputs whose results the journal holds."""
        journal = Journal.open(self.session())
        try:
            return {row.position for row in journal.tasks(["succeeded"])}
        finally:
            journal.close()

    def kill_after(self, results: int) -> set[int]:
        """SIGKILL the submitter once ``results`` results are kept; the inputs whose
        results were kept by then."""
        assert self.process is not None
        self.wait_for(f"{results} results", lambda: self.has_results(results))
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        return self.succeeded()

    def has_results(self, results: int) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.output.read_text()[-3000:]
        try:
            return len(self.succeeded()) >= results
        except (ValueError, AssertionError, Exception):  # not made yet
            return False

    def executions(self) -> collections.Counter[int]:
        """How often each input ran (started)."""
        return collections.Counter(int(path.name.split(".")[0])
                                   for path in self.marks.iterdir())

    def results(self) -> dict[int, object]:
        """Each input's result, read back from the journal."""
        journal = Journal.open(self.session())
        try:
            found = {}
            for row in journal.tasks(["succeeded"]):
                payload = journal.result(row.id)
                assert payload is not None, f"no result kept for input {row.position}"
                found[row.position] = decode_result(payload).value
            return found
        finally:
            journal.close()

    def clean_up(self) -> None:
        """Leave nothing behind, whatever the test did: the submitter, the map's
        scheduler jobs (in one call, as a giving-up runner cancels them), its
        runners."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        try:
            session = self.session()
        except (ValueError, OSError):
            return
        ids, command = beacon.launched(session)
        if ids and command:
            subprocess.run([*command, *ids], capture_output=True, timeout=60)
        map_id = _map_id_of(session)
        for line in processes_of(map_id) if map_id else []:
            pid = int(line.split(None, 1)[0])
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def gridmap(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the gridmap command from another shell, in this map's environment."""
        return subprocess.run([sys.executable, "-m", "gridmap_core.cli", *args],
                              cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)


def environment(root: Path, settings: Mapping[str, str], *, config: str = "") -> dict[str, str]:
    """The environment of a test map's processes: this one's, with ``settings``."""
    env = {**os.environ, **QUICK, **settings}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                      os.environ.get("PYTHONPATH", "")]))
    if config:
        path = root / "gridmap.toml"
        path.write_text(config)
        env["GRIDMAP_CONFIG"] = str(path)
    return env


def _map_id_of(session: Path) -> str:
    try:
        journal = Journal.open(session)
    except Exception:  # nothing to find by it
        return ""
    try:
        return journal.map_record().id
    finally:
        journal.close()


def processes_of(marker: str) -> list[str]:
    """The live processes that name ``marker`` (a map id): "PID COMMAND LINE" each."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in command:
            found.append(f"{entry} {command}")
    return found
