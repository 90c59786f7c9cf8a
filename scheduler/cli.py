"""The `scheduler` console script: one subcommand per service, plus `dev` and `token`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import click

from shared.observability.logs import configure_logging
from shared.runtime.event_loop import run_on
from shared.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from scheduler.operator import Server

log = logging.getLogger("scheduler")
P = ParamSpec("P")
R = TypeVar("R")


class _Scheduler(click.Group):
    """Click's group, but Ctrl-C ends a command with one log line and status 130, not click's "Aborted!"."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            log.info("interrupted: stopped")
            ctx.exit(130)


@click.group(cls=_Scheduler)
@click.option(
    "--log-level", default=None, help="debug, info, warning, error or critical (SCHEDULER_LOG_LEVEL, default info)."
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """An event-sourced job and webhook scheduler on NATS JetStream and Postgres."""
    # The one place the environment is read: every command is passed these settings and derives from them.
    try:
        settings = load_settings(os.environ, log_level=log_level)
    except SettingsError as exc:
        configure_logging("info")
        ctx.obj = exc  # reported by the command, so that `scheduler <command> --help` still answers
        return
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


def _with_settings(command: Callable[Concatenate[Settings, P], R]) -> Callable[P, R]:
    """Pass the command the settings `main` read, or stop it with the one line that says which one is invalid."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loaded = click.get_current_context().obj
        if not isinstance(loaded, Settings):
            raise click.ClickException(str(loaded))
        return command(loaded, *args, **kwargs)

    return run


def _changed(settings: Settings, **changes: object) -> Settings:
    """`settings` with the options a command was given (None: not given), or one line saying which is invalid."""
    try:
        return settings.replaced(**{name: value for name, value in changes.items() if value is not None})
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _run_one(settings: Settings, name: str) -> None:
    from scheduler.runner import install_stop_signals, run_services
    from shared.runtime.collector import settle_collector

    async def go() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)

        async def started() -> None:  # this process is the service's own: its collector is tuned for it
            settle_collector()

        await run_services(settings, [name], stop, on_ready=started)

    try:
        run_on(settings.event_loop, go())
    except ValueError as exc:  # configuration refused by a service (e.g. a missing secret)
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default=None, help="Listen address (SCHEDULER_API_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (SCHEDULER_API_PORT, default 8000).")
@_with_settings
def api(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the REST APIs."""
    _run_one(_changed(settings, api_host=host, api_port=port), "api")


@main.command()
@_with_settings
def ticker(settings: Settings) -> None:
    """Compute due times and publish one trigger per occurrence."""
    _run_one(settings, "ticker")


@main.command()
@_with_settings
def dispatcher(settings: Settings) -> None:
    """Deliver requested executions (webhooks) and record results."""
    _run_one(settings, "dispatcher")


@main.command()
@_with_settings
def projector(settings: Settings) -> None:
    """Build the Postgres read models from the streams (applies migrations first)."""
    _run_one(settings, "projector")


@main.command()
@click.option(
    "--app", "app_path", required=True, help="The Worker to run, as module:attribute (e.g. myapp.tasks:worker)."
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".scheduler"),
    show_default=True,
    help="Where `scheduler dev` runs: its NATS is used unless NATS_URL is set.",
)
@_with_settings
def worker(settings: Settings, app_path: str, data_dir: Path) -> None:
    """Run task workers: the functions a Worker registered, for jobs with a task_name."""
    from scheduler.runner import install_stop_signals
    from scheduler.worker import Worker

    module_name, _, attribute = app_path.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter("expected module:attribute", param_hint="--app")
    sys.path.insert(0, os.getcwd())  # like uvicorn: modules next to where the command runs
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"cannot load {app_path}: {exc}") from exc
    if not isinstance(found, Worker):
        raise click.ClickException(f"{app_path} is a {type(found).__name__}, not a scheduler.worker.Worker")
    settings = _found(settings, data_dir, "nats")

    async def go() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await found.run(settings, stop)

    try:
        run_on(settings.event_loop, go())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".scheduler"), show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--single-process",
    is_flag=True,
    help="Run the four services in dev's own process (one core; for small machines) instead of a process each.",
)
@click.option(
    "--nats-cluster",
    type=click.IntRange(1, 5),
    default=1,
    show_default=True,
    help="Embedded nats-servers to run, clustered over loopback (3 to try a replicated store; unless NATS_URL is set).",
)
@_with_settings
def dev(settings: Settings, data_dir: Path, host: str, port: int, single_process: bool, nats_cluster: int) -> None:
    """Run the whole system on this machine (embedded NATS and Postgres unless NATS_URL/DATABASE_URL are set)."""
    from scheduler.dev import run_dev

    try:
        # The services' processes start with dev's environment (PATH, HOME, ...) and dev's settings written into it.
        run_dev(
            settings,
            data_dir,
            host,
            port,
            inherited=os.environ,
            single_process=single_process,
            nats_cluster=nats_cluster,
        )
    except (SettingsError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--account", "accounts", multiple=True, type=click.UUID, help="Account id the token may act on.")
@click.option("--service-role", is_flag=True, help="A token that may act on every account.")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Lifetime in seconds.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".scheduler"), show_default=True)
@_with_settings
def token(settings: Settings, accounts: tuple[uuid.UUID, ...], service_role: bool, ttl: int, data_dir: Path) -> None:
    """Mint a bearer token signed with SUPABASE_JWT_SECRET (or the one `scheduler dev` keeps)."""
    from services.api.core.auth import mint_token

    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret is not None else None
    kept = data_dir / "jwt_secret"
    if not secret and kept.exists():
        secret = kept.read_text().strip()
    if not secret:
        raise click.ClickException("set SUPABASE_JWT_SECRET (or run `scheduler dev` once to create a local secret)")
    if not accounts and not service_role:
        raise click.ClickException("name at least one --account, or --service-role")
    click.echo(
        mint_token(
            secret,
            accounts=list(accounts),
            audience=settings.jwt_audience,
            ttl_seconds=ttl,
            service_role=service_role,
        )
    )


@main.group()
def dlq() -> None:
    """Dead letters: occurrences whose last attempt failed."""


_data_dir = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".scheduler"),
    show_default=True,
    help="Where `scheduler dev` runs: its servers are used unless NATS_URL/DATABASE_URL are set.",
)


def _found(settings: Settings, data_dir: Path, *needs: Server) -> Settings:
    """Settings for a command that reaches `needs`, checked to be this system's servers (one line if not)."""
    from scheduler.operator import OperatorError, operator_settings, preflight

    try:
        found = operator_settings(settings, data_dir, needs)
        asyncio.run(preflight(found, needs))
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    return found


_account = click.option("--account", type=click.UUID, default=None, help="Only this account.")
_job = click.option("--job", type=click.UUID, default=None, help="Only this job.")
_since = click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Only those dead-lettered at or after this time (UTC unless an offset is given).",
)


@dlq.command("list")
@_account
@_job
@_since
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@_data_dir
@_with_settings
def dlq_list(
    settings: Settings,
    account: uuid.UUID | None,
    job: uuid.UUID | None,
    since: datetime | None,
    limit: int,
    data_dir: Path,
) -> None:
    """List dead letters, newest first."""
    from scheduler import dlq as tools

    settings = _found(settings, data_dir, "database")
    items, total = asyncio.run(tools.listed(settings, *tools.selected(account, job, since), limit))
    tools.print_listing(items, total)


@dlq.command("redrive")
@click.option("--execution", "executions", multiple=True, type=click.UUID, help="A dead letter's execution id.")
@_account
@_job
@_since
@_data_dir
@_with_settings
def dlq_redrive(
    settings: Settings,
    executions: tuple[uuid.UUID, ...],
    account: uuid.UUID | None,
    job: uuid.UUID | None,
    since: datetime | None,
    data_dir: Path,
) -> None:
    """Re-drive dead letters: one more attempt of each occurrence (same webhook-id)."""
    from scheduler import dlq as tools

    if not executions and job is None and since is None:
        raise click.UsageError("name --execution, --job or --since (all dead letters is --since 1970-01-01T00:00:00)")
    settings = _found(settings, data_dir, "nats", "database")
    report = asyncio.run(tools.redriven(settings, *tools.selected(account, job, since, executions)))
    tools.print_report(report)


@main.group()
def events() -> None:
    """Follow the event streams."""


@events.command("tail")
@click.option("--account", type=click.UUID, default=None, help="Only this account's events.")
@click.option("--job", type=click.UUID, default=None, help="Only this job's events.")
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable), e.g. ExecutionFailed.")
@click.option("--stream", "stream", type=click.Choice(["jobs", "executions", "all"]), default="all", show_default=True)
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Start from this time (UTC unless an offset is given) instead of from now.")  # fmt: skip
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many events.")
@click.option("--json", "as_json", is_flag=True, help="Print each event as its JSON, one per line.")
@_data_dir
@_with_settings
def events_tail(
    settings: Settings,
    account: uuid.UUID | None,
    job: uuid.UUID | None,
    types: tuple[str, ...],
    stream: str,
    since: datetime | None,
    count: int | None,
    as_json: bool,
    data_dir: Path,
) -> None:
    """Print events as they arrive, one line each, until Ctrl-C (or --count)."""
    from scheduler import events as tools

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    streams = tools.STREAMS if stream == "all" else (stream,)
    settings = _found(settings, data_dir, "nats")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            tools.tail(
                settings,
                streams=streams,
                account=account,
                job=job,
                types=frozenset(types),
                since=since,
                count=count,
                as_json=as_json,
                out=lambda text: click.echo(text),
            )
        )


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON document.")
@_data_dir
@_with_settings
def status(settings: Settings, as_json: bool, data_dir: Path) -> None:
    """Streams, consumers and their lag, who holds which lease, projection lag, the ticker's heartbeat."""
    from scheduler import status as tools

    report = asyncio.run(tools.gather_status(_found(settings, data_dir, "nats", "database")))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for text in tools.render(report):
            click.echo(text)


@main.command()
@click.option("--keep-previous", is_flag=True, help="Keep the replaced tables in the schema replay_previous.")
@_data_dir
@_with_settings
def replay(settings: Settings, keep_previous: bool, data_dir: Path) -> None:
    """Rebuild the read models from the streams into fresh tables, then swap them in at once."""
    from services.projector.replay import replay as run_replay

    settings = _found(settings, data_dir, "nats", "database")
    with click.progressbar(length=0, label="replaying events", show_pos=True) as bar:

        def grow(n: int) -> None:
            bar.length = (bar.length or 0) + n

        report = asyncio.run(run_replay(settings, total=grow, progress=bar.update, keep_previous=keep_previous))
    positions = ", ".join(f"{stream} at {position}" for stream, position in sorted(report.positions.items()))
    click.echo(
        f"replayed {report.events} events at {report.rate:,.0f} events/s ({report.seconds:.1f} s in all,"
        f" {report.waiting_seconds:.1f} s of it waiting for the live projector to stand by); swapped in the new"
        f" read models ({positions})"
    )


if __name__ == "__main__":
    sys.exit(main())
