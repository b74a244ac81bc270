"""
On-disk cache of flow fields: each frame pair's flow is computed once, whatever the epoch.

The key names the dataset, the clip (its key frame or synthetic start; a drive's clip names
carry the drive's digest and frame size, so two drives never share an entry), the frame gap,
the flow method and its settings; flows are stored as float16 ``.npy`` (0.06 px resolution at
100 px of motion), written atomically so that parallel workers never read half a file.
"""

import hashlib
import os
from pathlib import Path

import numpy as np
from stkd_ros.atomic_write import temporary_beside


class FlowCache:
    """A flow source like an estimator (``between(clip, i, j)``), computing each pair once."""

    def __init__(self, root, estimator, dataset_key: str):
        self.root, self.estimator, self.dataset_key = Path(root), estimator, dataset_key
        self.root.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    def path(self, clip_name: str, gap: int, i: int, j: int) -> Path:
        key = f'{self.dataset_key}|{clip_name}|gap={gap}|{i}->{j}|{self.estimator.key()}'
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.root / digest[:2] / f'{digest}.npy'

    def between(self, clip, i: int, j: int) -> np.ndarray:
        """Flow from frame i to j of ``clip``, from the cache or computed and stored."""
        path = self.path(clip.name, clip.gap, i, j)
        if path.is_file():
            try:
                flow = np.load(path)
                if flow.shape == clip.frames.shape[1:3] + (2,):
                    self.hits += 1
                    return flow.astype(np.float32)
            except (ValueError, OSError):
                pass   # a damaged entry is recomputed below
        self.misses += 1
        flow = self.estimator.between(clip, i, j)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_beside(path)
        np.save(tmp, flow.astype(np.float16))
        os.replace(tmp, path)
        return flow
