"""Progress of a map with quiet=False: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from gridmap_core.backend import Failure
from gridmap_core.map.runs import Run
from gridmap_core.watching.progress import Counts, Progress, counts_of
from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT

SCRIPT = textwrap.dedent("""
    import time
    from gridmap_core import grid_map

    def work(x):
        time.sleep(0.4)
        if x == 3:
            raise ValueError("three")
        return x

    print(grid_map(work, range(6), local=True, max_processes=2, name="demo",
                   on_failure="return", quiet={quiet}))
""")


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "SEND_ERROR_MAIL": "False", **extra}


def test_lines_when_output_is_not_a_terminal() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(quiet=False)],
                          capture_output=True, text=True, timeout=60,
                          env=_env(GRIDMAP_PROGRESS_INTERVAL="0.2"))
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "\r" not in done.stderr  # no bar drawn into a file
    # Workers may take jobs before the first line is printed: running + queued is all.
    first = re.fullmatch(r"gridmap: demo: started: 0/6 done \(0 failed\), (\d) running, "
                         r"(\d) queued, 0 s", lines[0])
    assert first is not None, lines
    assert int(first.group(1)) + int(first.group(2)) == 6
    assert re.fullmatch(r"gridmap: demo: finished: 6/6 done \(1 failed\), 0 running, "
                        r"0 queued, \d+ s", lines[-1]), lines
    middle = [line for line in lines if ": running: " in line]
    assert middle, lines
    assert any(", 2 running," in line for line in middle), middle
    assert "ValueError('three')" in done.stdout


def test_nothing_when_quiet() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(quiet=True)],
                          capture_output=True, text=True, timeout=60,
                          env=_env(GRIDMAP_PROGRESS_INTERVAL="0.2"))
    assert done.returncode == 0, done.stderr
    assert "gridmap: demo" not in done.stderr and "demo:" not in done.stderr


def _on_a_terminal(script: str) -> str:
    """What ``script`` writes to a terminal (a pty that reports no size, as under
    `script`), raw: carriage returns and escape sequences included."""
    parent, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-c", script],
                               stdin=child, stdout=child, stderr=child, env=_env())
    os.close(child)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the other end closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    os.close(parent)
    text = output.decode(errors="replace")
    assert process.wait(10) == 0, text
    return text


def _screen(text: str) -> list[str]:
    """The lines a terminal shows after ``text``: a carriage return goes back to the
    start of the line and what follows overwrites it, as on a real one."""
    lines: list[list[str]] = [[]]
    row = column = 0
    position = 0
    while position < len(text):
        char = text[position]
        escape = re.match(r"\x1b\[(\d*)([A-Za-z])", text[position:])
        if escape:  # tqdm moves up (ESC [ A) to reach bars above the cursor
            if escape.group(2) == "A":
                row = max(0, row - int(escape.group(1) or 1))
            position += len(escape.group(0))
            continue
        if char == "\r":
            column = 0
        elif char == "\n":
            row += 1
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (column + 1 - len(line)))
            line[column] = char
            column += 1
        position += 1
    return ["".join(line).rstrip() for line in lines]


def test_a_bar_on_a_terminal() -> None:
    text = _on_a_terminal(SCRIPT.format(quiet=False))
    frames = [frame for frame in text.replace("\n", "\r").split("\r") if "demo:" in frame]
    assert len(frames) >= 3, text  # redrawn as jobs end
    assert "gridmap: demo" not in text  # a bar, not lines
    last = frames[-1]
    assert "100%" in last and "6/6" in last and "running 0, queued 0, failed 1" in last, last
    assert any("running 2," in frame for frame in frames), frames


AROUND = textwrap.dedent("""
    import logging
    import sys
    import time
    import warnings
    from gridmap_core.map.runs import Run
    from gridmap_core.watching.progress import Progress

    {setup}
    run = Run(4)
    with Progress([run], "demo"):
        run.started(0, "h")
        time.sleep(0.3)  # the bar is redrawn
        logging.getLogger("gridmap.example").warning("a log line")
        warnings.warn("a python warning")
        run.succeeded(range(4), [0, 1, 2, 3], "h")
        time.sleep(0.3)
    print("after the bar")
""")


@pytest.mark.parametrize("setup", [
    "",  # no logging set up: logging's last resort writes warnings to stderr
    "logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')",
    "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(name)s: %(message)s')",
], ids=["last-resort", "stderr-handler", "stdout-handler"])
def test_log_lines_and_warnings_are_written_around_the_bar(setup: str) -> None:
    screen = _screen(_on_a_terminal(AROUND.format(setup=setup)))
    logged = "WARNING gridmap.example: a log line" if setup else "a log line"
    assert logged in screen, screen  # a line of its own, not glued to the bar's
    assert [line for line in screen if re.fullmatch(
        r"<string>:\d+: UserWarning: a python warning", line)], screen
    bars = [line for line in screen if "demo:" in line]
    assert len(bars) == 1 and "4/4" in bars[0], screen  # one bar, drawn again below them
    assert screen.index(bars[0]) > screen.index(logged)
    assert screen[screen.index(bars[0]) + 1] == "after the bar", screen


def test_logging_and_warnings_are_as_before_once_the_bar_closes() -> None:
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(handler)
    show = warnings.showwarning
    try:
        with Progress([Run(1)], "m", stream=sys.stderr, terminal=True):
            assert "emit" in vars(handler) and warnings.showwarning is not show
        assert "emit" not in vars(handler) and warnings.showwarning is show
    finally:
        root.removeHandler(handler)


def test_counts_follow_starts_ends_and_resubmissions() -> None:
    run = Run(5)
    assert counts_of([run]) == Counts(5, 0, 0, 0, 5)
    run.started(0, "h")
    run.started(1, "h")
    run.started(1, "h")  # a second report of one start counts once
    assert counts_of([run]) == Counts(5, 0, 0, 2, 3)
    run.succeeded(range(0, 1), [0], "h")
    run.resubmitted(1, "killed")  # back in the queue
    assert counts_of([run]) == Counts(5, 1, 0, 0, 4)
    run.started(1, "h")
    run.started(2, "h")
    run.failed(2, Failure(ValueError("x"), None, "h"))
    run.succeeded([1, 4], [1, 4], "h")  # 4 never reported a start
    assert counts_of([run]) == Counts(5, 3, 1, 0, 1)
    assert counts_of([run, Run(2)]) == Counts(7, 3, 1, 0, 3)


def test_an_interrupted_map_says_so() -> None:
    stream = io.StringIO()
    run = Run(2)
    with pytest.raises(KeyboardInterrupt), \
            Progress([run], "m", interval=60, stream=stream, terminal=False):
        run.started(0, "h")
        raise KeyboardInterrupt
    lines = stream.getvalue().splitlines()
    assert lines == ["gridmap: m: started: 0/2 done (0 failed), 0 running, 2 queued, 0 s",
                     "gridmap: m: interrupted: 0/2 done (0 failed), 1 running, 1 queued, 0 s"]


def test_lines_go_through_logging_where_it_shows_them(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="gridmap.progress"), \
            Progress([Run(1)], "m", interval=60, stream=stream, terminal=False):
        pass
    assert stream.getvalue() == ""
    assert [r.getMessage() for r in caplog.records if r.name == "gridmap.progress"] == [
        "m: started: 0/1 done (0 failed), 0 running, 1 queued, 0 s",
        "m: finished: 0/1 done (0 failed), 0 running, 1 queued, 0 s"]
