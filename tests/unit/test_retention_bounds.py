"""The retention's arithmetic: partition bounds aligned on the epoch, the horizon a partition moves at a time, the
partitions kept, and a stream age limit that outlives every row the table keeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from shared.contracts.executions import nominal_time_of, occurrence_id
from shared.domain.retention import AHEAD, Retention

DAY = 86_400
NOW = datetime(2026, 3, 29, 1, 30, 15, tzinfo=UTC)


def test_a_month_in_days() -> None:
    retention = Retention(30 * DAY, DAY)
    assert retention.horizon(NOW) == datetime(2026, 2, 27, tzinfo=UTC)
    bounds = retention.partitions(NOW, retention.horizon(NOW))
    assert bounds[0] == (datetime(2026, 2, 27, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC))
    assert bounds[-1][1] == datetime(2026, 4, 1, tzinfo=UTC) and len(bounds) == 30 + 1 + AHEAD
    assert retention.stream_max_age == 32 * DAY


def test_forever_keeps_everything_and_still_makes_partitions_ahead() -> None:
    retention = Retention(0, DAY)
    assert retention.forever and retention.horizon(NOW) is None and retention.stream_max_age == 0
    assert [lower.day for lower, _ in retention.partitions(NOW, None)] == [29, 30, 31]


@given(
    st.sampled_from([5, 60, 3600, DAY]),
    st.integers(min_value=1, max_value=40),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_what_is_purged_is_older_than_the_retention_and_the_stream_outlives_what_is_kept(
    width: int, partitions: int, now: datetime
) -> None:
    retention = Retention(partitions * width, width)
    horizon = retention.horizon(now)
    assert horizon is not None
    # Purged: everything before the horizon, all of it older than the retention; kept: at most a partition more.
    assert now - timedelta(seconds=retention.seconds + width) < horizon <= now - timedelta(seconds=retention.seconds)
    # Every row kept (from the horizon on, published at most a little before its time) is still in the stream.
    assert now - timedelta(seconds=retention.stream_max_age) < horizon - timedelta(seconds=width / 2)
    bounds = retention.partitions(now, horizon)
    assert bounds[0][0] == horizon and all(a[1] == b[0] for a, b in pairwise(bounds))
    assert bounds[-1][0] <= now + timedelta(seconds=AHEAD * width) < bounds[-1][1]


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1), timezones=st.just(UTC)))
def test_an_occurrence_id_gives_back_its_nominal_time_the_rows_partition(nominal: datetime) -> None:
    assert nominal_time_of(occurrence_id(uuid.uuid4(), nominal)) == nominal


def test_a_string_that_is_no_occurrence_id_has_no_nominal_time() -> None:
    for text in ("", "x", f"{uuid.uuid4()}_20261301T000000.000000Z", f"{uuid.uuid4()}_2026-01-01T00:00:00Z"):
        assert nominal_time_of(text) is None
