"""A one-vs-rest linear SVM fit on several cores: the head's fit, in forked processes.

liblinear solves one binary problem per label (label vs everything else) one after another, on one core.
Those problems are independent, so the labels are split into groups and each group is fit in its own
process: the group's labels keep their targets and every other label becomes one `rest` target, so each
of the group's problems is exactly the problem the single fit would solve (the `rest` row is thrown away).
With 2 cores and 20 labels that is 11 problems per core instead of 20 on one.

Why processes and not threads: liblinear draws its coordinate order from one global random generator, so
two fits in threads would interleave their draws and the weights would change from run to run. Why
`os.fork` and not a pool: the children inherit the feature matrix without a copy and write their rows
into shared memory, so nothing is pickled either way and nothing is started per call but the fork itself.
Where fork is unavailable (not Linux), or there is one core or few labels, it is the ordinary single fit.
Each group is seeded the same way on every run, so a fit is reproducible on a machine with the same
number of cores.
"""

from __future__ import annotations

import logging
import mmap
import os
import signal
import sys
from typing import Any

import numpy as np

from labelrouter.util.cores import default_jobs

log = logging.getLogger(__name__)

MIN_LABELS_PER_GROUP = 2  # a group of one would be a binary problem, fit with other conventions


def fit_linear_svc(features: Any, targets: np.ndarray, n_classes: int, *, C: float, tol: float,
                   sample_weight: np.ndarray | None = None, jobs: int | None = None,
                   max_iter: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(coef (n_classes × features), intercept (n_classes,)) of a one-vs-rest LinearSVC on `targets`
    (0..n_classes-1, every class present); with two classes, one row scoring class 1 (as scikit-learn)."""
    jobs = default_jobs() if jobs is None else jobs
    groups = min(jobs, n_classes // MIN_LABELS_PER_GROUP)
    if groups < 2 or n_classes < 3:
        model = _svc(C, tol, max_iter).fit(features, targets, sample_weight=sample_weight)
        return model.coef_, model.intercept_
    parts = np.array_split(np.arange(n_classes), groups)
    n_features = features.shape[1]
    buffer = mmap.mmap(-1, 8 * n_classes * (n_features + 1))  # shared with the children: MAP_SHARED
    out = np.frombuffer(buffer, dtype=np.float64).reshape(n_classes, n_features + 1)
    children: dict[int, np.ndarray] = {}
    try:
        for part in parts[1:]:
            pid = os.fork()
            if pid == 0:  # the child: fit, write its rows, leave without running the parent's cleanup
                code = 1
                try:
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    _fit_group(features, targets, part, out, C, tol, max_iter, sample_weight)
                    code = 0
                except BaseException as exc:  # noqa: BLE001 - the parent refits these labels and says so
                    print(f"labelrouter: head-fitting process: {type(exc).__name__}: {exc}", file=sys.stderr)
                finally:
                    os._exit(code)
            children[pid] = part
        _fit_group(features, targets, parts[0], out, C, tol, max_iter, sample_weight)
        for pid, part in list(children.items()):
            _, status = os.waitpid(pid, 0)
            del children[pid]
            if os.waitstatus_to_exitcode(status) != 0:  # killed, out of memory: fit its labels here
                log.warning("a head-fitting process failed (status %s); fitting its %d labels here", status, len(part))
                _fit_group(features, targets, part, out, C, tol, max_iter, sample_weight)
        return out[:, :-1].copy(), out[:, -1].copy()
    finally:
        for pid in children:  # interrupted while waiting: leave no orphan behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        del out
        buffer.close()


def _svc(C: float, tol: float, max_iter: int) -> Any:
    from sklearn.svm import LinearSVC

    return LinearSVC(C=C, tol=tol, max_iter=max_iter, random_state=0)


def _fit_group(features: Any, targets: np.ndarray, part: np.ndarray, out: np.ndarray, C: float, tol: float,
               max_iter: int, sample_weight: np.ndarray | None) -> None:
    """The one-vs-rest rows of the labels in `part`, written into `out` (coef | intercept)."""
    local = np.full(out.shape[0], len(part))  # every label outside the group: `rest`
    local[part] = np.arange(len(part))
    model = _svc(C, tol, max_iter).fit(features, local[targets], sample_weight=sample_weight)
    out[part, :-1] = model.coef_[: len(part)]
    out[part, -1] = model.intercept_[: len(part)]
