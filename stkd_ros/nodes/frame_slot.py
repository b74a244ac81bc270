"""A bounded frame buffer between the subscription callback and the inference thread."""

from collections import deque
import threading

from stkd_ros.errors import InputError


class LatestSlot:
    """
    Holds at most ``capacity`` items; a ``put`` into a full buffer drops (and counts) the oldest.

    With capacity 1 (the default) the consumer always gets the newest frame, so under overload
    latency stays bounded by one inference instead of growing with a queue.
    """

    def __init__(self, capacity: int = 1):
        if capacity < 1:
            raise InputError(f'capacity must be at least 1, got {capacity}')
        self._cond = threading.Condition()
        self._items = deque()
        self._capacity = capacity
        self._closed = False
        self.dropped = 0

    def put(self, item):
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()

    def take(self, timeout: float = None):
        """Wait for an item and return the oldest held; None on timeout or after ``close``."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
