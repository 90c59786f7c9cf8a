"""Grouping a batch's steps into round trips: by statement, in phase order, without reordering any one row's writes."""

from __future__ import annotations

from collections.abc import Hashable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.projector.batched_writes import Statement, Step, Write, statements

pytestmark = pytest.mark.unit

INSERT, START, FINISH = "insert", "start", "finish"
PHASE = {INSERT: 0, START: 1, FINISH: 2}


def step(key: Hashable | None, sql: str, *more: str) -> Step:
    """A step of `key` whose writes carry the key, so a test can follow them."""
    return Step(key, PHASE[sql], tuple(Write(s, (key, s)) for s in (sql, *more)))


def sent(steps: list[Step], *, grouped: bool = True) -> list[tuple[str, list[object]]]:
    return [(s.sql, [row[0] for row in s.rows]) for s in statements(steps, grouped=grouped)]


def test_the_steps_of_many_executions_go_as_one_statement_per_kind_in_phase_order() -> None:
    steps = [step("a", INSERT), step("b", INSERT), step("a", START), step("c", INSERT), step("b", FINISH)]
    assert sent(steps) == [(INSERT, ["a", "b", "c"]), (START, ["a"]), (FINISH, ["b"])]


def test_a_step_with_several_writes_groups_each_with_its_kind() -> None:
    steps = [step("a", INSERT, "advance"), step("b", INSERT, "advance"), step("b", START)]
    assert sent(steps) == [(INSERT, ["a", "b"]), ("advance", ["a", "b"]), (START, ["b"])]


def test_a_repeated_event_ends_the_run_so_it_applies_after_the_first() -> None:
    steps = [step("a", INSERT), step("a", START), step("b", INSERT), step("a", START)]
    assert sent(steps) == [(INSERT, ["a", "b"]), (START, ["a"]), (START, ["a"])]


def test_an_event_out_of_order_ends_the_run_and_keeps_its_place() -> None:
    steps = [step("a", FINISH), step("a", START), step("b", START)]
    assert sent(steps) == [(FINISH, ["a"]), (START, ["a", "b"])]


def test_a_step_about_more_than_its_own_rows_runs_alone_in_stream_order() -> None:
    steps = [step("a", INSERT), step(None, INSERT), step("b", INSERT), step("a", START)]
    assert sent(steps) == [(INSERT, ["a"]), (INSERT, [None]), (INSERT, ["b"]), (START, ["a"])]


def test_ungrouped_is_one_statement_per_write_in_stream_order() -> None:
    steps = [step("a", INSERT, "advance"), step("b", INSERT), step("a", START)]
    assert sent(steps, grouped=False) == [(INSERT, ["a"]), ("advance", ["a"]), (INSERT, ["b"]), (START, ["a"])]


def test_a_runs_statements_come_as_soon_as_the_step_that_ends_it_is_read() -> None:
    read: list[Step] = []

    def stream() -> Iterator[Step]:
        for s in (step("a", INSERT), step("a", INSERT), step("b", INSERT)):
            read.append(s)
            yield s

    first = next(statements(stream()))
    assert (first, len(read)) == (Statement(INSERT, [("a", INSERT)]), 2)


def test_nothing_to_apply_sends_nothing() -> None:
    assert sent([]) == []


STEPS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", None]), st.sampled_from([INSERT, START, FINISH, "advance"])).map(
        lambda t: Step(t[0], PHASE.get(t[1], 0), (Write(t[1], (t[0], t[1])),))
    ),
    max_size=30,
)


@given(STEPS)
def test_grouping_never_reorders_the_writes_of_one_row_nor_crosses_a_step_that_runs_alone(steps: list[Step]) -> None:
    ungrouped = [(s.sql, row) for s in statements(steps, grouped=False) for row in s.rows]
    grouped_statements = list(statements(steps))
    grouped = [(s.sql, row) for s in grouped_statements for row in s.rows]
    assert sorted(grouped, key=repr) == sorted(ungrouped, key=repr)
    for key in ("a", "b", "c"):
        assert [w for w in grouped if w[1][0] == key] == [w for w in ungrouped if w[1][0] == key]
    alone = [i for i, s in enumerate(steps) if s.key is None]
    for index in alone:
        position = sum(1 for s in steps[:index] for _ in s.writes)
        assert sorted(grouped[:position], key=repr) == sorted(ungrouped[:position], key=repr)
    assert len(grouped_statements) <= len(ungrouped)
