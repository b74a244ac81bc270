"""
Rendered synthetic frames kept on disk, so an epoch reads pixels instead of rendering again.

A frame, its labels and its exact flow to another frame are a pure function of the world's
settings, the clip, the frame and the renderer; the cache folder names the settings and
``RENDER_VERSION``, so a renderer that draws other pixels never reads an old frame. Files
are written whole (a temporary file, then a rename), so runs that share a cache never read a
half-written frame.
"""

from dataclasses import astuple
import os
from pathlib import Path
from typing import Optional

import numpy as np

#: Bump when the renderer draws other pixels, labels or flow for the same settings
#: (``stkd_ros/data/world/`` and ``SyntheticWorld._render``); test_synthetic.py holds the
#: renderer's source digest that goes with each version and fails when they part.
RENDER_VERSION = 1


class RenderCache:
    """Frames of one world under ``root``: ``get`` returns None on a miss, ``put`` stores."""

    def __init__(self, root, config):
        self.dir = Path(root) / f'v{RENDER_VERSION}_{"_".join(map(str, astuple(config)))}'
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, index: int, t: int, flow_to: Optional[int]) -> Path:
        return self.dir / f'{index:05d}_{t:03d}_{"none" if flow_to is None else flow_to}.npz'

    def has(self, index: int, t: int, flow_to: Optional[int]) -> bool:
        """Whether the frame is stored (a damaged file is found, and replaced, by ``get``)."""
        return self._path(index, t, flow_to).is_file()

    def get(self, index: int, t: int, flow_to: Optional[int]):
        path = self._path(index, t, flow_to)
        if not path.is_file():
            return None
        try:
            with np.load(path) as f:
                return f['image'], f['label'], f['flow'] if 'flow' in f else None
        except (OSError, ValueError, KeyError):    # a damaged file: render it again
            return None

    def put(self, index: int, t: int, flow_to: Optional[int], image, label, flow):
        path = self._path(index, t, flow_to)
        tmp = path.with_name(f'{path.stem}.{os.getpid()}.tmp.npz')
        arrays = {'image': image, 'label': label}
        if flow is not None:
            arrays['flow'] = flow
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
