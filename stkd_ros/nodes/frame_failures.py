"""Frames whose processing raised: counted, reported once per kind, and when to give up."""

from dataclasses import dataclass
import threading
import traceback

# Tracebacks are logged for this many distinct failure sites; later new ones only count.
MAX_KINDS_LOGGED = 20


@dataclass(frozen=True)
class Verdict:
    """What one failure calls for: a traceback (first of its kind) and/or giving up."""

    first_of_its_kind: bool
    give_up: bool


class FrameFailures:
    """
    Failure bookkeeping for inference workers (thread-safe: one per node, several workers).

    A kind is the exception's type and the line that raised it, so a model that fails on
    every frame logs its traceback once, while a second, different bug still gets its own.
    ``max_consecutive`` failures in a row (no frame served between them) mean the node cannot
    go on; 0 never gives up.
    """

    def __init__(self, max_consecutive: int):
        self.max_consecutive = max_consecutive
        self.total = self.consecutive = 0
        self.last = ''   # 'Type: message' of the newest failure
        self._kinds = set()
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> Verdict:
        """Count a failed frame; say whether to log its traceback and whether to give up."""
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        kind = (type(exc).__name__, *((where[0].filename, where[0].lineno) if where else ()))
        with self._lock:
            self.total += 1
            self.consecutive += 1
            self.last = one_line(exc)
            first = kind not in self._kinds and len(self._kinds) < MAX_KINDS_LOGGED
            self._kinds.add(kind)
            return Verdict(first, 0 < self.max_consecutive <= self.consecutive)

    def served(self):
        """Count a frame that went through: the failures in a row start again from 0."""
        with self._lock:
            self.consecutive = 0


def one_line(exc: BaseException) -> str:
    """Return 'Type: first line of the message', for one-line reports."""
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0]}' if text else type(exc).__name__
