"""`labelrouter worker`, `beat` and `fleet …`: the worker fleet on Celery + Redis (docs/fleet.md)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from labelrouter.cli.common import friendly_errors, out, settings_for
from labelrouter.errors import ConfigError

fleet_app = typer.Typer(help="Hand jobs to the worker fleet and see where it stands (docs/fleet.md).",
                        no_args_is_help=True)


def _fleet_modules() -> Any:
    try:
        from labelrouter.fleet import app as fleet_app_module
    except ImportError as exc:
        raise ConfigError(f"the worker fleet needs its extra: pip install 'labelrouter[fleet]' ({exc})") from None
    return fleet_app_module


def _names(settings: Any, names: list[str] | None) -> list[str]:
    from labelrouter.fleet.config import load_fleet

    fleet = load_fleet(settings.fleet_path)
    unknown = sorted(set(names or []) - set(fleet))
    if unknown:
        raise ConfigError(f"not in the fleet file {settings.fleet_path}: {', '.join(unknown)}")
    return list(names or fleet)


@friendly_errors
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Tasks at once: 1 runs them in this process (the encoder "
                                                         "uses every core); N forks N processes sharing the cores.")] = 1,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO",
    hostname: Annotated[str | None, typer.Option(help="This worker's name (default: celery@<host>).")] = None,
) -> None:
    """Run a worker: take jobs from the fleet's Redis queue (poll, label, nightly sync, training) for every
    mailbox of the fleet file. Start one per machine, or several; they never race on a mailbox."""
    modules = _fleet_modules()
    settings = settings_for()
    _names(settings, None)  # a broken fleet file fails here, not in the first task
    if concurrency > 1:
        modules.split_threads(concurrency)
    modules.create_app(settings).worker_main(modules.worker_argv(settings, concurrency=concurrency,
                                                                 loglevel=loglevel, hostname=hostname))


@friendly_errors
def beat(loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "INFO") -> None:
    """Run the scheduler (one per fleet): a poll of every mailbox each LABELROUTER_FLEET_POLL_EVERY_S seconds,
    the nightly sync and the nightly training (UTC times from the settings). Restart it to pick up mailboxes
    added to the fleet file."""
    modules = _fleet_modules()
    settings = settings_for()
    app = modules.create_app(settings, schedule_for=_names(settings, None))
    app.start(["beat", "--loglevel", loglevel, "--scheduler", "celery.beat:Scheduler"])


WaitOpt = Annotated[float, typer.Option("--wait", min=0, help="Seconds to wait for each result (0: just hand it over).")]
NamesArg = Annotated[list[str] | None, typer.Argument(help="Mailboxes (default: all).")]


def _send(task: str, names: list[str] | None, args: Callable[[str], list[Any]], wait: float) -> None:
    """Hand one task per named mailbox (default: every one) to the queue; with `wait`, print its result."""
    modules = _fleet_modules()
    settings = settings_for()
    app = modules.create_app(settings)
    task_name = getattr(modules, task)
    for name in _names(settings, names):
        task_args = args(name)
        result = app.send_task(task_name, args=task_args, queue=settings.fleet_namespace)
        line: dict[str, Any] = {"task": task_name, "args": task_args, "id": result.id}
        if wait > 0:
            try:
                line["result"] = result.get(timeout=wait, propagate=False)
                line["state"] = result.state
            except Exception as exc:  # noqa: BLE001 - a timeout or a broker error is reported, not raised
                line["state"], line["error"] = "waiting", f"{type(exc).__name__}: {exc}"
            if isinstance(line.get("result"), BaseException):
                line["result"] = f"{type(line['result']).__name__}: {line['result']}"
        typer.echo(json.dumps(line, ensure_ascii=False, default=str))


@fleet_app.command("poll")
@friendly_errors
def poll(names: NamesArg = None, wait: WaitOpt = 0.0) -> None:
    """Sync and label new mail of these mailboxes now."""
    _send("POLL", names, lambda n: [n], wait)


@fleet_app.command("label")
@friendly_errors
def label(name: str, message_ids: Annotated[list[str], typer.Argument(help="Message ids in that mailbox.")],
          wait: WaitOpt = 0.0) -> None:
    """Label these messages of one mailbox (what a push notification of new mail would hand over)."""
    _send("LABEL", [name], lambda n: [n, message_ids], wait)


@fleet_app.command("sync")
@friendly_errors
def sync(names: NamesArg = None, wait: WaitOpt = 0.0) -> None:
    """The nightly sync of these mailboxes, now."""
    _send("NIGHTLY_SYNC", names, lambda n: [n], wait)


@fleet_app.command("train")
@friendly_errors
def train(names: NamesArg = None,
          stages: Annotated[str, typer.Option(help="head, retrieval, rerank or all (as `labelrouter train`).")] = "head",
          wait: WaitOpt = 0.0) -> None:
    """Train (and promote if better) the models of these mailboxes, now."""
    _send("TRAIN", names, lambda n: [n, stages], wait)


@fleet_app.command("status")
@friendly_errors
def status() -> None:
    """The fleet's mailboxes, which are held by a worker now, and the jobs waiting in the queue."""
    from labelrouter.fleet.coordination import Coordination

    settings = settings_for()
    names = _names(settings, None)
    coordination = Coordination(settings.broker_url, settings.fleet_namespace, lease_s=settings.fleet_lease_s)
    try:
        waiting = coordination.redis.llen(f"{settings.fleet_namespace}:{settings.fleet_namespace}")
    except Exception as exc:  # noqa: BLE001 - the broker's own error, in one line
        raise ConfigError(f"cannot reach the broker at {settings.broker_url.split('@')[-1]}: {exc}") from None
    out.print(f"queue {settings.fleet_namespace}: {waiting} waiting")
    for name in names:
        held = [what for what in ("mailbox", "train") if coordination.holder(f"{what}:{name}")]
        out.print(f"{name}: {'held (' + ', '.join(held) + ')' if held else 'idle'}")
