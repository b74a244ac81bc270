"""A latest-frame-only slot between the subscription callback and the inference thread."""

import threading


class LatestSlot:
    """
    Holds at most one item; a newer ``put`` replaces (and counts as dropped) the older one.

    Under overload the consumer always gets the newest frame, so latency stays bounded by one
    inference instead of growing with a queue.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item):
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout: float = None):
        """Wait for an item and return it; None on timeout or after ``close``."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()
