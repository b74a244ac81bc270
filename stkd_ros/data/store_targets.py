"""A label store's classes and confidence for each frame of a clip (``stkd label``)."""

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX


class StoreTargets:
    """
    Give every clip its frames' classes and confidence from a label store (``targets``).

    ``store`` None gives the clips of a stream the store does not cover (the labeled one)
    targets of 255 and confidence 0, so that every sample of a batch has both.
    """

    def __init__(self, clips, store=None):
        self.clips, self.store = clips, store

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        if self.store is None:
            clip.targets = np.full(clip.labels.shape, IGNORE_INDEX, np.uint8)
            clip.confidence = np.zeros(clip.labels.shape, np.uint8)
            return clip
        read = [self.store.read(clip.sequence, t) for t in clip.times]
        clip.targets = np.stack([labels for labels, _ in read])
        clip.confidence = np.stack([confidence for _, confidence in read])
        return clip
