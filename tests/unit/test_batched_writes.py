"""Grouping a batch's steps into round trips: by statement, in phase order, without reordering any one row's writes."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.projector.batched_writes import Folding, Many, Statement, Step, Write, columns, statements

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


# Folding, on a model of a table: a key's row is a tuple of the changes applied to it; an insert ignores a row that
# exists; a change applies only where its guard lets it (here: to a row that has not taken it yet).
CREATE, FOLD = "create", "fold"
MODEL = Many("model")
FOLD_MANY = Many(FOLD)


def _appended(name: str, row: tuple[str, ...]) -> tuple[str, ...]:
    return row if name in row else (*row, name)


def _keyed(key: str, row: tuple[str, ...]) -> tuple[object, ...]:
    return (key, row)


def creating(key: str) -> Step:
    return Step(
        key, 0, (Write(CREATE, (key,), MODEL), Write("advance", (key,))), Folding((), FOLD_MANY, partial(_keyed, key))
    )


def changing(key: str, phase: int, name: str, *, foldable: bool = True) -> Step:
    change = partial(_appended, name) if foldable else None
    return Step(key, phase, (Write(f"change{phase}", (key, name), MODEL),), change=change)


def run_model(statements_: Iterable[Statement], table: dict[str, tuple[str, ...]]) -> None:
    """Apply statements to `table` as the database would, folded inserts' fallbacks included."""
    for statement in statements_:
        for row in statement.rows:
            if statement.sql == CREATE:
                table.setdefault(row[0], ())
            elif statement.sql.startswith("change") and row[0] in table:
                table[row[0]] = _appended(row[1], table[row[0]])
        if statement.sql == FOLD:
            inserted = []
            for key, row in statement.rows:
                if key not in table:
                    table[key] = row
                    inserted.append(key)
            run_model(statements(s for s in statement.fallback if s.key not in inserted), table)


def test_an_executions_steps_in_one_run_fold_into_its_insert() -> None:
    steps = [creating("a"), creating("b"), changing("a", 1, "x"), changing("a", 2, "y"), changing("c", 1, "z")]
    sent = list(statements(steps))
    fold = next(s for s in sent if s.sql == FOLD)
    assert fold.rows == [("a", ("x", "y"))] and fold.many == FOLD_MANY
    assert [s.key for s in fold.fallback] == ["a", "a"]  # applied with their guards where "a" existed
    # "b" had nothing to fold: a plain insert; the job's advance goes as before; "c" was not created here.
    assert [(s.sql, [r[0] for r in s.rows]) for s in sent if s.sql != FOLD] == [
        ("advance", ["a", "b"]),
        (CREATE, ["b"]),
        ("change1", ["c"]),
    ]


def test_a_step_that_cannot_fold_stops_the_fold_there() -> None:
    steps = [creating("a"), changing("a", 1, "x"), changing("a", 2, "y", foldable=False), changing("a", 3, "w")]
    sent = [(s.sql, s.rows) for s in statements(steps)]
    assert sent == [
        (FOLD, [("a", ("x",))]),
        ("advance", [("a",)]),
        ("change2", [("a", "y")]),
        ("change3", [("a", "w")]),
    ]


def test_a_repeated_request_ends_the_run_so_it_does_not_fold_into_the_first() -> None:
    steps = [creating("a"), changing("a", 1, "x"), creating("a"), changing("a", 2, "y")]
    sent = [(s.sql, s.rows) for s in statements(steps)]
    assert sent[0] == (FOLD, [("a", ("x",))]) and sent[2] == (FOLD, [("a", ("y",))])


def test_a_group_of_one_row_goes_as_the_one_row_statement_and_more_as_one_set_based_statement() -> None:
    one = list(statements([changing("a", 1, "x")]))
    assert one == [Statement("change1", [("a", "x")])]
    (many,) = statements([changing("a", 1, "x"), changing("b", 1, "y")])
    assert many == Statement("change1", [("a", "x"), ("b", "y")], MODEL)


def test_set_based_arguments_are_one_array_per_parameter_with_json_as_text() -> None:
    rows = [(1, {"a": "\x00"}, "t"), (2, None, "u"), (3, [1, 2], None)]
    ids, documents, texts = columns(Many("sql", json=frozenset({1})), rows)
    assert (ids, texts) == ([1, 2, 3], ["t", "u", None])
    assert all(d is None or isinstance(d, str) for d in documents), documents
    # NUL becomes U+FFFD, as in every JSON value the projector writes.
    assert [None if d is None else json.loads(d) for d in documents] == [{"a": "\ufffd"}, None, [1, 2]]


MODEL_STEPS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3), st.booleans()).map(
        lambda t: creating(t[0]) if t[1] == 0 else changing(t[0], t[1], f"x{t[1]}", foldable=t[2])
    ),
    max_size=25,
)


@given(MODEL_STEPS, st.dictionaries(st.sampled_from(["a", "b", "c"]), st.just(("old",))))
def test_folded_grouped_statements_leave_the_table_as_one_by_one(
    steps: list[Step], existing: dict[str, tuple[str, ...]]
) -> None:
    one_by_one, grouped = dict(existing), dict(existing)
    run_model(statements(steps, grouped=False), one_by_one)
    run_model(statements(steps), grouped)
    assert grouped == one_by_one
