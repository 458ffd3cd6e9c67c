"""Merge per-shard values in a fixed tree over shard indices, so arrival order cannot matter.

Floating-point merges (moments, t-digests) give slightly different results in a different
order, yet a run's statistics must be identical however its shards arrive, are retried or
resumed (DESIGN section 3). Here shard `k` is leaf `k`; a node at level L and index i covers
shards [i * F**L, (i + 1) * F**L) and is built, children in index order, as soon as its last
child exists. The final value is the root of the same tree whatever the order of `add`.
Pending nodes are few when shards arrive roughly in order, and are the whole state to
checkpoint: `nodes()` / `from_nodes()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

__all__ = ["ShardTree"]

T = TypeVar("T")


class ShardTree(Generic[T]):
    """Deterministic merging of one value per shard; `merge` must combine values in order."""

    def __init__(
        self, shard_count: int, merge: Callable[[Sequence[T]], T], fan_in: int = 16
    ) -> None:
        if shard_count < 1 or fan_in < 2:
            raise ValueError("a shard tree needs at least one shard and a fan-in of at least 2")
        self.shard_count = shard_count
        self.fan_in = fan_in
        self._merge = merge
        self._nodes: dict[tuple[int, int], T] = {}
        self._top = 0
        while fan_in**self._top < shard_count:
            self._top += 1

    def add(self, shard: int, value: T) -> None:
        """Give shard `shard`'s value; merges every node this completes."""
        if not 0 <= shard < self.shard_count:
            raise IndexError(f"shard {shard} is outside 0..{self.shard_count - 1}")
        if (0, shard) in self._nodes or self._covered(0, shard):
            raise ValueError(f"shard {shard} was already added")
        level, index = 0, shard
        self._nodes[(level, index)] = value
        while level < self._top:
            parent = index // self.fan_in
            children = self._children(level + 1, parent)
            if not all((level, child) in self._nodes for child in children):
                return
            merged = self._merge([self._nodes.pop((level, child)) for child in children])
            level, index = level + 1, parent
            self._nodes[(level, index)] = merged

    def result(self) -> T | None:
        """Everything added so far, merged in tree order (None before the first value)."""
        if not self._nodes:
            return None
        ordered = sorted(self._nodes.items(), key=lambda item: self._first_shard(*item[0]))
        values = [value for _, value in ordered]
        return values[0] if len(values) == 1 else self._merge(values)

    @property
    def complete(self) -> bool:
        """True once every shard has been added."""
        return (self._top, 0) in self._nodes

    def nodes(self) -> list[tuple[int, int, T]]:
        """The pending nodes as (level, index, value): the state to checkpoint."""
        return [(level, index, value) for (level, index), value in sorted(self._nodes.items())]

    @classmethod
    def from_nodes(
        cls,
        shard_count: int,
        merge: Callable[[Sequence[T]], T],
        nodes: Iterable[tuple[int, int, T]],
        fan_in: int = 16,
    ) -> ShardTree[T]:
        """Rebuild a tree from `nodes()`."""
        tree = cls(shard_count, merge, fan_in)
        tree._nodes = {(level, index): value for level, index, value in nodes}
        return tree

    def _children(self, level: int, index: int) -> list[int]:
        first = index * self.fan_in
        span = self.fan_in ** (level - 1)
        return [c for c in range(first, first + self.fan_in) if c * span < self.shard_count]

    def _first_shard(self, level: int, index: int) -> int:
        return index * self.fan_in**level

    def _covered(self, level: int, index: int) -> bool:
        """True if an ancestor node already contains this node."""
        while level < self._top:
            level, index = level + 1, index // self.fan_in
            if (level, index) in self._nodes:
                return True
        return False
