"""The `scheduler` console script: one subcommand per service, plus `dev` and `token`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shared.observability.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from scheduler.operator import Server

log = logging.getLogger("scheduler")


def _logging(level: str) -> None:
    fmt = os.environ.get("SCHEDULER_LOG_FORMAT", "text")
    configure_logging(level, "json" if fmt == "json" else "text")


class _Scheduler(click.Group):
    """Click's group, but Ctrl-C ends a command with one log line and status 130, not click's "Aborted!"."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            log.info("interrupted: stopped")
            ctx.exit(130)


@click.group(cls=_Scheduler)
@click.option("--log-level", default=lambda: os.environ.get("SCHEDULER_LOG_LEVEL", "info"), show_default="info")
def main(log_level: str) -> None:
    """An event-sourced job and webhook scheduler on NATS JetStream and Postgres."""
    _logging(log_level)


def _run_one(name: str, **overrides: object) -> None:
    from scheduler.runner import install_stop_signals, run_services

    try:
        settings = load_settings(None, **overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc

    async def go() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await run_services(settings, [name], stop)

    try:
        asyncio.run(go())
    except ValueError as exc:  # configuration refused by a service (e.g. a missing secret)
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--host", default=None, help="Listen address (SCHEDULER_API_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Listen port (SCHEDULER_API_PORT, default 8000).")
def api(host: str | None, port: int | None) -> None:
    """Serve the REST APIs."""
    _run_one("api", api_host=host, api_port=port)


@main.command()
def ticker() -> None:
    """Compute due times and publish one trigger per occurrence."""
    _run_one("ticker")


@main.command()
def dispatcher() -> None:
    """Deliver requested executions (webhooks) and record results."""
    _run_one("dispatcher")


@main.command()
def projector() -> None:
    """Build the Postgres read models from the streams (applies migrations first)."""
    _run_one("projector")


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
def worker(app_path: str, data_dir: Path) -> None:
    """Run task workers: the functions a Worker registered, for jobs with a task_name."""
    from scheduler.runner import install_stop_signals
    from shared.worker import Worker

    module_name, _, attribute = app_path.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter("expected module:attribute", param_hint="--app")
    sys.path.insert(0, os.getcwd())  # like uvicorn: modules next to where the command runs
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"cannot load {app_path}: {exc}") from exc
    if not isinstance(found, Worker):
        raise click.ClickException(f"{app_path} is a {type(found).__name__}, not a shared.worker.Worker")
    settings = _found(data_dir, "nats")

    async def go() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await found.run(settings, stop)

    try:
        asyncio.run(go())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".scheduler"), show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def dev(data_dir: Path, host: str, port: int) -> None:
    """Run the whole system on this machine (embedded NATS and Postgres unless NATS_URL/DATABASE_URL are set)."""
    from scheduler.dev import run_dev

    try:
        run_dev(data_dir, host, port)
    except (SettingsError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--account", "accounts", multiple=True, type=click.UUID, help="Account id the token may act on.")
@click.option("--service-role", is_flag=True, help="A token that may act on every account.")
@click.option("--ttl", type=int, default=3600, show_default=True, help="Lifetime in seconds.")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path(".scheduler"), show_default=True)
def token(accounts: tuple[uuid.UUID, ...], service_role: bool, ttl: int, data_dir: Path) -> None:
    """Mint a bearer token signed with SUPABASE_JWT_SECRET (or the one `scheduler dev` keeps)."""
    from services.api.core.auth import mint_token

    secret = os.environ.get("SUPABASE_JWT_SECRET")
    kept = data_dir / "jwt_secret"
    if not secret and kept.exists():
        secret = kept.read_text().strip()
    if not secret:
        raise click.ClickException("set SUPABASE_JWT_SECRET (or run `scheduler dev` once to create a local secret)")
    if not accounts and not service_role:
        raise click.ClickException("name at least one --account, or --service-role")
    settings = load_settings()
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


def _found(data_dir: Path, *needs: Server) -> Settings:
    """Settings for a command that reaches `needs`, checked to be this system's servers (one line if not)."""
    from scheduler.operator import OperatorError, operator_settings, preflight

    try:
        settings = operator_settings(data_dir, needs)
        asyncio.run(preflight(settings, needs))
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


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
def dlq_list(
    account: uuid.UUID | None, job: uuid.UUID | None, since: datetime | None, limit: int, data_dir: Path
) -> None:
    """List dead letters, newest first."""
    from scheduler import dlq as tools

    settings = _found(data_dir, "database")
    items, total = asyncio.run(tools.listed(settings, *tools.selected(account, job, since), limit))
    tools.print_listing(items, total)


@dlq.command("redrive")
@click.option("--execution", "executions", multiple=True, type=click.UUID, help="A dead letter's execution id.")
@_account
@_job
@_since
@_data_dir
def dlq_redrive(
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
    settings = _found(data_dir, "nats", "database")
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
def events_tail(
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
    settings = _found(data_dir, "nats")
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
def status(as_json: bool, data_dir: Path) -> None:
    """Streams, consumers and their lag, who holds which lease, projection lag, the ticker's heartbeat."""
    from scheduler import status as tools

    report = asyncio.run(tools.gather_status(_found(data_dir, "nats", "database")))
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for text in tools.render(report):
            click.echo(text)


@main.command()
@click.option("--keep-previous", is_flag=True, help="Keep the replaced tables in the schema replay_previous.")
@_data_dir
def replay(keep_previous: bool, data_dir: Path) -> None:
    """Rebuild the read models from the streams into fresh tables, then swap them in at once."""
    from services.projector.replay import replay as run_replay

    settings = _found(data_dir, "nats", "database")
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
