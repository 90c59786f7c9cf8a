"""How long execution history is kept, as arithmetic on instants: the executions table's time partitions, the
horizon before which rows are purged, and the EXECUTIONS stream's age limit that keeps every event of every row the
table still holds (so a replay rebuilds what is retained)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_SECONDS = 86_400
# Partitions made ahead of the present: an occurrence is published at most the fire lead (seconds) before its
# nominal time, and a manual run's nominal time is the api's clock; two partitions cover both and a skewed clock.
AHEAD = 2


@dataclass(frozen=True, slots=True)
class Retention:
    """`seconds` of history kept (0: forever); the executions table is cut into partitions `partition_seconds`
    wide by nominal time, aligned on the epoch (a width divides a day, so a day's partitions start at midnight
    UTC)."""

    seconds: float
    partition_seconds: int

    @classmethod
    def of_days(cls, days: float, partition_seconds: int) -> Retention:
        return cls(days * DAY_SECONDS, partition_seconds)

    @property
    def forever(self) -> bool:
        return self.seconds <= 0

    def start_of(self, at: datetime) -> datetime:
        """The lower bound of the partition holding `at`."""
        offset = int((at - _EPOCH).total_seconds()) // self.partition_seconds * self.partition_seconds
        return _EPOCH + timedelta(seconds=offset)

    def horizon(self, now: datetime) -> datetime | None:
        """Rows of occurrences before this are purged (None: nothing is): the start of the partition `seconds`
        ago, so a partition goes once all of it is older than the retention."""
        if self.forever:
            return None
        return self.start_of(now - timedelta(seconds=self.seconds))

    def history_from(self, stored: datetime | None, now: datetime) -> datetime | None:
        """Where the execution history begins: the later of the horizon the last purge stored and the one the next
        purge will use (None: all of it is kept). An occurrence before it has no outcome to look at, or soon none."""
        found = [h for h in (stored, self.horizon(now)) if h is not None]
        return max(found) if found else None

    def partitions(self, now: datetime, horizon: datetime | None) -> list[tuple[datetime, datetime]]:
        """The [lower, upper) bounds of the partitions that should exist at `now`: from the horizon's (or the
        present's, with no horizon) to AHEAD past the present's."""
        width = timedelta(seconds=self.partition_seconds)
        lower = horizon if horizon is not None else self.start_of(now)
        last = self.start_of(now) + AHEAD * width
        bounds = []
        while lower <= last:
            bounds.append((lower, lower + width))
            lower += width
        return bounds

    @property
    def stream_max_age(self) -> float:
        """The EXECUTIONS stream's age limit in seconds (0: none): the retention plus two partitions, so every event
        of every row the table keeps (back to at most a partition before the retention, published at most the fire
        lead before its nominal time) is still in the stream."""
        if self.forever:
            return 0.0
        return self.seconds + 2 * self.partition_seconds
