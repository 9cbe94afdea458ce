"""A bounded buffer that drops the oldest document when full, and counts what it dropped.

`put` is O(1) and never waits: the decision loop hands documents over through it. A batch
taken for sending and then not accepted goes back to the front; if newer documents filled the
room meanwhile, the oldest of the batch are the ones dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestBuffer(Generic[T]):
    __slots__ = ("_items", "dropped", "maxlen")

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.maxlen = maxlen
        self._items: deque[T] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if len(self._items) >= self.maxlen:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)

    def take(self, count: int) -> list[T]:
        items = self._items
        return [items.popleft() for _ in range(min(count, len(items)))]

    def put_back(self, batch: Sequence[T]) -> None:
        """Return a batch taken earlier to the front, in order, within the bound."""
        room = self.maxlen - len(self._items)
        keep = list(batch[len(batch) - room:]) if room < len(batch) else list(batch)
        self.dropped += len(batch) - len(keep)
        self._items.extendleft(reversed(keep))
