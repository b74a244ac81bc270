"""Rolling statistics for /diagnostics: rate, latency percentiles, counters."""

from collections import deque
import time

import numpy as np


class RollingStats:
    """Latencies and completion times over the last ``window`` frames."""

    def __init__(self, window: int = 300):
        self.latencies = deque(maxlen=window)
        self.done_at = deque(maxlen=window)
        self.counts = {'received': 0, 'processed': 0, 'dropped': 0, 'rejected': 0,
                       'failed': 0}

    def record(self, latency_s: float, now: float = None):
        self.latencies.append(latency_s)
        self.done_at.append(time.monotonic() if now is None else now)
        self.counts['processed'] += 1

    def rate_hz(self) -> float:
        if len(self.done_at) < 2:
            return 0.0
        span = self.done_at[-1] - self.done_at[0]
        return (len(self.done_at) - 1) / span if span > 0 else 0.0

    def percentiles_ms(self, qs=(50, 95, 99)) -> dict:
        if not self.latencies:
            return {f'p{q}_ms': float('nan') for q in qs}
        values = np.percentile(np.asarray(self.latencies) * 1e3, qs)
        return {f'p{q}_ms': float(v) for q, v in zip(qs, values)}

    def summary(self) -> dict:
        return {'rate_hz': self.rate_hz(), **self.percentiles_ms(), **self.counts}
