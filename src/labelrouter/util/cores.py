"""How many processes CPU-bound work may fork: the cores this process may run on."""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs() -> int:
    """Processes a fit or an analysis may use: the available cores where forking is safe (Linux), else 1."""
    return available_cores() if sys.platform.startswith("linux") else 1
