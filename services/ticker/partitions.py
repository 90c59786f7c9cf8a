"""Which job partitions a ticker fires: a fair share of them, held by leases, among the tickers alive.

Every ticker keeps a membership lease (`member.<instance>`) and leases on its partitions (`ticker.<p>`). Each step
renews what it holds, then moves toward an equal share (PARTITIONS / tickers alive, rounded up): it claims free
partitions while below it and hands back its highest-numbered ones while above it, so a new ticker gets its share
within a step or two and a dead one's partitions go to the others once its leases expire.

A step says whether the sharing moved (`unsettled`): it changed what this ticker holds or is to hand back, or it saw
the number of tickers change. The caller steps more often for a while after that: tickers started together (a
deployment's replicas) see each other within a fraction of a second, and the first one, which took every partition
before the others joined, hands their shares back at once instead of a renewal interval later.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from shared.bus.leases import Leases
from shared.contracts.subjects import PARTITIONS

MEMBER_PREFIX = "member."
PARTITION_PREFIX = "ticker."


def partition_key(partition: int) -> str:
    return f"{PARTITION_PREFIX}{partition}"


@dataclass(frozen=True, slots=True)
class Step:
    """What changed: partitions gained, partitions lost (taken over elsewhere), partitions to hand back."""

    gained: frozenset[int] = frozenset()
    lost: frozenset[int] = frozenset()
    surplus: frozenset[int] = frozenset()
    unsettled: bool = False


@dataclass
class PartitionLeases:
    leases: Leases
    partitions: int = PARTITIONS
    owned: set[int] = field(default_factory=set)
    members: int = 0  # tickers alive at the last step

    @property
    def member_key(self) -> str:
        return f"{MEMBER_PREFIX}{self.leases.holder}"

    async def step(self) -> Step:
        """Renew, then claim or offer back partitions toward a fair share. Hand the surplus back with `release`
        once its watermarks are saved."""
        if self.member_key in self.leases.held:
            if not await self.leases.renew(self.member_key):
                await self.leases.acquire(self.member_key)
        else:
            await self.leases.acquire(self.member_key)
        lost = set()
        for partition in sorted(self.owned):
            if not await self.leases.renew(partition_key(partition)):
                lost.add(partition)
        self.owned -= lost
        keys = await self.leases.keys("")  # one listing for members and partitions alike
        members = max(1, sum(k.startswith(MEMBER_PREFIX) for k in keys))
        joined_or_left, self.members = members != self.members, members
        share = math.ceil(self.partitions / members)
        if len(self.owned) > share:
            return Step(lost=frozenset(lost), surplus=frozenset(sorted(self.owned)[share:]), unsettled=True)
        taken = {int(k.removeprefix(PARTITION_PREFIX)) for k in keys if k.startswith(PARTITION_PREFIX)}
        free = [p for p in range(self.partitions) if p not in taken]
        random.shuffle(free)  # two tickers starting together do not race for the same partitions
        gained = set()
        for partition in free:
            if len(self.owned) >= share:
                break
            if await self.leases.acquire(partition_key(partition)):
                self.owned.add(partition)
                gained.add(partition)
        unsettled = bool(gained or lost) or joined_or_left
        return Step(gained=frozenset(gained), lost=frozenset(lost), unsettled=unsettled)

    async def renew_held(self) -> None:
        """Renew what is held and change nothing else: keeps the leases through a long take-over between steps (a
        renewal that fails is noticed by the next step)."""
        for key in [self.member_key, *(partition_key(p) for p in sorted(self.owned))]:
            await self.leases.renew(key)

    async def release(self, partitions: frozenset[int]) -> None:
        for partition in partitions:
            self.owned.discard(partition)
            await self.leases.release(partition_key(partition))

    async def release_all(self) -> None:
        self.owned.clear()
        await self.leases.release_all()
