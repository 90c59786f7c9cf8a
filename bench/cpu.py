"""CPU time of a set of processes and everything they start, over a window, and per execution.

A snapshot reads every tracked process and all its descendants at that instant: a child started after the previous
snapshot (a PostgreSQL backend, a service `scheduler dev` starts) is found by walking the tree again. Each process's
reading is its own user+system time plus that of its children it has already reaped (Linux adds a child's time,
and its own reaped children's, to its parent's when the parent waits for it), so a process that ended between two
snapshots is still counted: in the parent that reaped it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import psutil

# A process across time: its pid and start time (a pid is reused; the pair is not).
Key = tuple[int, float]


@dataclass(frozen=True)
class Reading:
    """One process's CPU seconds so far (its own and its reaped children's), and where they are reported."""

    group: str
    parent: Key | None
    seconds: float


Snapshot = Mapping[Key, Reading]


def used_between(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per group between two snapshots of the same processes.

    A process alive in both contributes its difference; one new in `after` all of its time (it started in between).
    One gone by `after` has had its whole time added to the ancestor that reaped it, so what it had used by `before`
    is taken off that ancestor's group (the nearest ancestor still alive). One gone with no ancestor left in sight
    is not counted: what it used before it ended cannot be known."""
    used: dict[str, float] = defaultdict(float)
    for key, reading in after.items():
        previous = before.get(key)
        if previous is None:
            used[reading.group] += reading.seconds
        else:  # in the group it had: one that has ended but is not reaped yet no longer shows its command line
            used[previous.group] += reading.seconds - previous.seconds
    for key, reading in before.items():
        if key in after:
            continue
        ancestor = _living_ancestor(reading.parent, before, after)
        if ancestor is not None:
            used[after[ancestor].group] -= reading.seconds
    return dict(used)


def _living_ancestor(parent: Key | None, before: Snapshot, after: Snapshot) -> Key | None:
    seen: set[Key] = set()
    while parent is not None and parent not in seen:
        if parent in after:
            return parent
        seen.add(parent)
        previous = before.get(parent)
        parent = previous.parent if previous is not None else None
    return None


def per_execution_ms(cpu_seconds: float, executions: int) -> float | None:
    """Milliseconds of CPU per execution; None when nothing was executed."""
    if executions <= 0:
        return None
    return round(cpu_seconds * 1000 / executions, 3)


def arrivals_between(calls: Iterable[tuple[str, float]], began: float, ended: float) -> int:
    """Requests that reached the receiver in [began, ended): the executions the window's CPU paid for (repeats
    included: a repeat costs as much as a first delivery)."""
    return sum(1 for _, at in calls if began <= at < ended)


def total(used: Mapping[str, float]) -> float:
    return sum(used.values())


def rounded(used: Mapping[str, float], digits: int = 2) -> dict[str, float]:
    """Largest first, for the tables."""
    return {k: round(v, digits) for k, v in sorted(used.items(), key=lambda item: -item[1])}


def _key(process: psutil.Process) -> Key:
    return process.pid, process.create_time()


def _seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def snapshot(roots: Mapping[str, psutil.Process], group_of: Callable[[str, psutil.Process], str]) -> dict[Key, Reading]:
    """Every root (named by its key in `roots`) and every live descendant (grouped by `group_of(root name, it)`)."""
    readings: dict[Key, Reading] = {}
    for name, root in roots.items():
        try:
            readings[_key(root)] = Reading(name, None, _seconds(root))
            descendants = root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for process in descendants:
            try:
                parent = psutil.Process(process.ppid())
                readings[_key(process)] = Reading(group_of(name, process), _key(parent), _seconds(process))
            except psutil.NoSuchProcess:
                continue  # ended meanwhile: its parent reaps it and carries its time
    return readings


def role(process: psutil.Process, roles: Iterable[str]) -> str | None:
    """The role a process's command line names (`scheduler dispatcher`, `--service=dispatcher`), if any."""
    wanted = set(roles)
    try:
        arguments = process.cmdline()[1:]
    except psutil.Error:
        return None
    for argument in arguments:
        word = argument.rsplit("=", 1)[-1]
        if word in wanted:
            return word
    return None
