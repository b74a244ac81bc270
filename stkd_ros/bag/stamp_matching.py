"""
Pair the labels of a drive with its frames by header stamp, holding only a bounded window.

A bag interleaves the image and label topics in receive order, so a frame's label may come a
little before or after it. Each side waits at most ``window`` entries for its partner; a
label that finds no frame in time (or never) is dropped and counted, so memory does not grow
with the length of the drive.
"""

from collections import OrderedDict


class StampMatcher:
    """Match ``add_frame`` and ``add_label`` calls of the same stamp, in either order."""

    def __init__(self, window: int = 30):
        self.window = window
        self.labels = OrderedDict()   # stamp -> label waiting for its frame
        self.frames = OrderedDict()   # stamp -> the frame's masks waiting for their label
        self.received = self.matched = self.unmatched = 0

    def add_frame(self, stamp: int, masks):
        """Return the frame's label if it came already, else keep ``masks`` waiting (None)."""
        label = self.labels.pop(stamp, None)
        if label is not None:
            self.matched += 1
            return label
        self.frames[stamp] = masks
        if len(self.frames) > self.window:
            self.frames.popitem(last=False)   # a frame without a label: not scored
        return None

    def add_label(self, stamp: int, label):
        """Return the masks of the label's frame if it came already, else keep it (None)."""
        self.received += 1
        masks = self.frames.pop(stamp, None)
        if masks is not None:
            self.matched += 1
            return masks
        if self.labels.pop(stamp, None) is not None:
            self.unmatched += 1               # a second label for one stamp replaces the first
        self.labels[stamp] = label
        if len(self.labels) > self.window:
            self.labels.popitem(last=False)
            self.unmatched += 1
        return None

    def finish(self) -> int:
        """Count the labels still waiting as unmatched, drop them; returns ``unmatched``."""
        self.unmatched += len(self.labels)
        self.labels.clear()
        self.frames.clear()
        return self.unmatched
