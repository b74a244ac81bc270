"""
The frames of label stores as labeled training clips, for training the next teacher.

Self-training (Naive-Student, Chen et al. ECCV 2020): a teacher learns from the labeled
frames and from stores of labels made without new annotation: the labeled frames' truth
carried along the flow (`stkd propagate-labels`) and a teacher's test-time-augmented labels of
the unlabeled video (`stkd label`). A store names the video it labels (``source``): the
carried truth the config's labeled video, any other store its unlabeled video, and its
frames are read from there. Each stored frame is one clip of one frame, its labels the
store's classes (255, where the store has none, teaches nothing).
"""

from typing import List, Tuple

from stkd_ros.data.clip import Clip
from stkd_ros.errors import InputError
from stkd_ros.labeling.sources import Sequence
from stkd_ros.labeling.store import LabelStore, StoreError


def store_sequences(data_cfg, store: LabelStore, classes) -> List[Sequence]:
    """
    Return the sequences of ``data_cfg``'s video that ``store`` labels (a one-line error if none).

    The store's classes must be ``classes``, the dataset's.
    """
    from stkd_ros.labeling.identity import (CARRIED_TRUTH, labeled_video_identity,
                                            source_identity)
    if list(store.classes) != list(classes):
        raise StoreError(f'label store {store.root} has {len(store.classes)} classes '
                         f'({", ".join(store.classes[:3])}, ...), the {data_cfg.dataset} data '
                         f'{len(classes)} ({", ".join(list(classes)[:3])}, ...)')
    # Which video by what made the store, not by its source's name: CamVid's and Cityscapes'
    # labeled and unlabeled video are the same frames under one name.
    if store.teacher_sha256 == CARRIED_TRUTH:
        from stkd_ros.labeling.labeled_video import labeled_sequences
        what, here = 'labeled', labeled_video_identity(data_cfg)
        video = [s.sequence for s in labeled_sequences(data_cfg)] if store.source == here else []
    else:
        from stkd_ros.data.unlabeled import build_unlabeled, has_unlabeled_video
        from stkd_ros.labeling.sources import video_sequences
        what = 'unlabeled'
        here = source_identity(data_cfg) if has_unlabeled_video(data_cfg) else 'none'
        video = (video_sequences(build_unlabeled(data_cfg, clip_length=1, gap=1))
                 if store.source == here else [])
    if store.source != here:
        raise StoreError(f'label store {store.root} labels other video ({store.source}); '
                         f"this config's {what} video is {here}")
    names = {s.name for s in video}
    lacking = [name for name in store.sequences if name not in names]
    # The synthetic world's identity leaves out its number of streets on purpose: a store of
    # more streets serves a run of fewer. Elsewhere the same video holds the same sequences.
    if lacking and data_cfg.dataset != 'synthetic':
        raise StoreError(f'label store {store.root} holds {len(lacking)} sequence(s) that '
                         f"this config's {what} video lacks ({lacking[0]}, ...); make the "
                         f'store again')
    mine = [s for s in video if s.name in store.sequences]
    if not mine:
        raise StoreError(f'label store {store.root} holds none of the sequences of this '
                         f'config ({video[0].name}, ...)')
    return mine


class StoreFrames:
    """Every frame of each (store, sequences) part, as a one-frame Clip labeled by the store."""

    def __init__(self, parts: List[Tuple[LabelStore, List[Sequence]]]):
        self.items = [(store, sequence, t) for store, sequences in parts for sequence in sequences
                      for t in range(store.sequences[sequence.name]['frames'])]
        if not self.items:
            raise InputError('the label stores hold no frame to train on')

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index: int) -> Clip:
        store, sequence, t = self.items[index]
        frame = sequence.read(t)[0]
        labels = store.read(sequence.name, t)[0]
        if labels.shape != frame.shape[:2]:
            raise StoreError(f'label store {store.root}: {sequence.name} frame {t} has labels '
                             f'of {labels.shape[0]}x{labels.shape[1]}, the frame is '
                             f'{frame.shape[0]}x{frame.shape[1]}')
        return Clip(frame[None], labels[None], None, name=f'{sequence.name}_{t:06d}',
                    sequence=sequence.name, times=(t,))


def stores_as_clips(data_cfg, paths, classes) -> StoreFrames:
    """Open the complete label stores at ``paths`` and return their frames as clips."""
    parts = []
    for path in paths:
        store = LabelStore.open(path)
        parts.append((store, store_sequences(data_cfg, store, classes)))
    return StoreFrames(parts)
