"""Bounds on one message's work: a wall-clock budget that turns a stall into that message's failure.

Header and MIME caps (`mail.parse.ParseLimits`) keep parsing linear; this budget is the backstop for
whatever they miss. It interrupts with SIGALRM, so it applies where signals are delivered: the main
thread of a Unix process (where `run` and `label` parse). Elsewhere it is a no-op and the caps alone bound
the work.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from labelrouter.errors import MessageParseError


class BudgetExceeded(MessageParseError):
    """One message took longer than its time budget."""


@contextmanager
def time_budget(seconds: float, what: str) -> Iterator[None]:
    usable = (seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise BudgetExceeded(f"{what} took longer than its {seconds:g} s budget")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """One line naming what failed, safe to log: pydantic's input values (message text) are left out."""
    if isinstance(exc, MessageParseError):
        text = str(exc)
    elif isinstance(exc, ValidationError):
        text = f"{type(exc).__name__}: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:limit]
