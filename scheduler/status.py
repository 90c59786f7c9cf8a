"""`scheduler status`: streams, consumers and their lag, lease owners, projection lag and the ticker's heartbeat."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from nats.js.errors import NotFoundError

from services.ticker.partitions import MEMBER_PREFIX, PARTITION_PREFIX
from shared.bus.connection import connect, disconnect
from shared.bus.heartbeat import latest_heartbeat
from shared.bus.leases import Leases, leases_bucket
from shared.bus.streams import ticker_bucket
from shared.contracts.backfills import BACKFILLS_LEASE
from shared.contracts.subjects import Names
from shared.db.pool import create_pool
from shared.settings import Settings


async def gather_status(settings: Settings) -> dict[str, Any]:
    """Everything `scheduler status` shows, as plain data."""
    names = Names(settings.namespace)
    nc = await connect(settings.nats_url, "status")
    try:
        js = nc.jetstream()
        streams: dict[str, Any] = {}
        consumers: dict[str, Any] = {}
        for stream in (names.jobs_stream, names.executions_stream, names.tasks_stream):
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                continue
            streams[stream] = {"messages": info.state.messages, "bytes": info.state.bytes, "last": info.state.last_seq}
            for consumer in await js.consumers_info(stream):
                if consumer.config.durable_name:
                    consumers[consumer.name] = {
                        "stream": stream,
                        "pending": consumer.num_pending,
                        "in_flight": consumer.num_ack_pending,
                        "redelivered": consumer.num_redelivered,
                        "waiting_pulls": consumer.num_waiting,
                    }
        leases = Leases(await leases_bucket(js, settings), "status")
        partitions: dict[str, list[int]] = defaultdict(list)
        projectors: dict[str, str] = {}
        backfills: str | None = None
        members: list[str] = []
        for key in await leases.keys(""):
            owner = await leases.owner(key) or "?"
            if key.startswith(PARTITION_PREFIX):
                partitions[owner].append(int(key.removeprefix(PARTITION_PREFIX)))
            elif key.startswith(MEMBER_PREFIX):
                members.append(key.removeprefix(MEMBER_PREFIX))
            elif key == BACKFILLS_LEASE:
                backfills = owner
            elif key.startswith("projector."):
                projectors[key.removeprefix("projector.")] = owner
        heartbeat: dict[str, Any] | None = None
        beat = await latest_heartbeat(await ticker_bucket(js, settings))
        if beat is not None:
            age = (datetime.now(UTC) - beat.at).total_seconds()
            heartbeat = {"instance": beat.instance, "age_seconds": round(age, 1), "jobs": beat.jobs}
    finally:
        await disconnect(nc)
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        stored = {
            r["stream"]: r["position"] for r in await pool.fetch("SELECT stream, position FROM projector_positions")
        }
    finally:
        await pool.close()
    projection = {
        stream: {"position": stored.get(stream, 0), "lag": streams[stream]["last"] - stored.get(stream, 0)}
        for stream in (names.jobs_stream, names.executions_stream)
        if stream in streams
    }
    return {
        "streams": streams,
        "consumers": consumers,
        "tickers": {"members": sorted(members), "partitions": {k: sorted(v) for k, v in partitions.items()}},
        "ticker_heartbeat": heartbeat,
        "projectors": projectors,
        "projection": projection,
        "backfill_runner": backfills,
    }


def render(status: dict[str, Any]) -> list[str]:
    """The status as lines for a terminal."""
    out = ["streams"]
    for name, s in status["streams"].items():
        out.append(f"  {name:<28} {s['messages']:>10} messages  {s['bytes']:>12} bytes  last {s['last']}")
    out.append("consumers (pending = not yet delivered, in flight = delivered, not acknowledged)")
    for name, c in status["consumers"].items():
        out.append(
            f"  {name:<40} pending {c['pending']:>8}  in flight {c['in_flight']:>6}  redelivered {c['redelivered']}"
        )
    tickers = status["tickers"]
    out.append(f"tickers ({len(tickers['members'])} alive)")
    for owner, parts in sorted(tickers["partitions"].items()):
        out.append(f"  {owner:<40} {len(parts):>3} partitions: {','.join(map(str, parts))}")
    beat = status["ticker_heartbeat"]
    out.append(f"  heartbeat: {beat['instance']}, {beat['age_seconds']} s ago" if beat else "  heartbeat: none")
    out.append("projection (position applied to the read models, and how far behind the stream)")
    for stream, p in status["projection"].items():
        owner = status["projectors"].get(stream, "nobody")
        out.append(f"  {stream:<28} position {p['position']:>10}  lag {p['lag']:>8}  writer {owner}")
    out.append(f"backfills: run by {status['backfill_runner'] or 'nobody'}")
    return out
