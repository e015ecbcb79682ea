"""Log records and Python warnings written while a progress bar shows on a terminal go
around the bar, not into its line.

A bar is a line that tqdm redraws in place, with the cursor left at its end: anything
else written to the terminal meanwhile lands on the bar's line, glued to it, and the
next redraw overwrites part of it. As ``tqdm.write`` and
``tqdm.contrib.logging.logging_redirect_tqdm`` do, every write that reaches the
terminal goes through ``tqdm.external_write_mode``, which clears the bars, lets the
write through on a line of its own, and draws the bars again below it.

What is routed so: the stream handlers (to stdout, stderr or the bar's stream) of every
logger that has handlers, logging's last resort (which writes WARNING records to stderr
when the program set up no logging), and ``warnings.showwarning``. The handlers are
wrapped, not replaced, so their levels, filters and formatters stay as the program set
them. It is installed with the first bar and removed when the last one closes.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Callable
from typing import IO, Any, TextIO

__all__ = ["route_around_bars", "stop_routing"]

_lock = threading.Lock()
_bars = 0  # bars showing now
_wrapped: list[tuple[logging.Handler, Any, Callable[..., None]]] = []  # handler, own emit, ours
_warnings: tuple[Callable[..., None], Callable[..., None]] | None = None  # theirs, ours


def route_around_bars(stream: IO[str]) -> None:
    """Route log records and warnings around the bars while one shows on ``stream``;
    each call needs its :func:`stop_routing`."""
    global _bars
    with _lock:
        _bars += 1
        if _bars == 1:
            _install(stream)


def stop_routing() -> None:
    """The bar that called :func:`route_around_bars` has closed."""
    global _bars
    with _lock:
        _bars = max(0, _bars - 1)
        if _bars == 0:
            _uninstall()


def _terminal_handlers(stream: IO[str]) -> list[logging.Handler]:
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [logger for logger in list(logging.Logger.manager.loggerDict.values())
                if isinstance(logger, logging.Logger)]
    found: list[logging.Handler] = []
    for logger in loggers:
        for handler in list(logger.handlers):
            if _writes_to_terminal(handler, stream) and handler not in found:
                found.append(handler)
    last_resort = logging.lastResort
    if last_resort is not None and last_resort not in found:
        found.append(last_resort)  # its stream is whatever sys.stderr is when it writes
    return found


def _writes_to_terminal(handler: logging.Handler, stream: IO[str]) -> bool:
    if isinstance(handler, logging.FileHandler) or not isinstance(handler,
                                                                   logging.StreamHandler):
        return False
    target = handler.stream
    return target is sys.stdout or target is sys.stderr or target is stream


def _install(stream: IO[str]) -> None:
    global _warnings
    from tqdm import tqdm

    for handler in _terminal_handlers(stream):
        own = vars(handler).get("emit")  # None unless someone set it on the instance
        emit = handler.emit

        def around(record: logging.LogRecord, emit: Callable[[logging.LogRecord], None]
                   = emit, handler: logging.Handler = handler) -> None:
            target: TextIO | None = getattr(handler, "stream", None)
            with tqdm.external_write_mode(file=target):
                emit(record)

        handler.emit = around  # type: ignore[method-assign]
        _wrapped.append((handler, own, around))

    show = warnings.showwarning

    def show_around(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
        with tqdm.external_write_mode(file=sys.stderr if file is None else file):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_around
    _warnings = (show, show_around)


def _uninstall() -> None:
    global _warnings
    while _wrapped:
        handler, own, around = _wrapped.pop()
        if vars(handler).get("emit") is not around:
            continue  # set again by someone else meanwhile: theirs now
        if own is None:
            del handler.emit
        else:
            handler.emit = own  # type: ignore[method-assign]
    if _warnings is not None:
        show, show_around = _warnings
        if warnings.showwarning is show_around:
            warnings.showwarning = show
        _warnings = None
