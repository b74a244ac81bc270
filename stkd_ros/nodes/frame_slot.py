"""Bounded frame buffers, one per camera, between the subscription callbacks and inference."""

from collections import deque
import threading

from stkd_ros.errors import InputError


class FrameSlots:
    """
    One buffer of at most ``capacity`` items per camera.

    ``put`` into a full buffer drops (and counts) its oldest item. ``take`` waits for any
    camera and returns the oldest item of every camera that holds one, so the consumer
    batches all cameras in one pass.

    With capacity 1 (the default) the consumer always gets each camera's newest frame, so under
    overload latency stays bounded by one inference instead of growing with a queue.
    """

    def __init__(self, cameras=('',), capacity: int = 1):
        if capacity < 1:
            raise InputError(f'capacity must be at least 1, got {capacity}')
        self._cond = threading.Condition()
        self._items = {c: deque() for c in cameras}
        self._capacity = capacity
        self._closed = False
        self.dropped = dict.fromkeys(cameras, 0)

    def put(self, camera, item):
        with self._cond:
            items = self._items[camera]
            if len(items) >= self._capacity:
                items.popleft()
                self.dropped[camera] += 1
            items.append(item)
            self._cond.notify()

    def take(self, timeout: float = None) -> dict:
        """Wait for an item; return {camera: its oldest item} ({} on timeout or after close)."""
        with self._cond:
            if not any(self._items.values()) and not self._closed:
                self._cond.wait(timeout)
            return {c: items.popleft() for c, items in self._items.items() if items}

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
