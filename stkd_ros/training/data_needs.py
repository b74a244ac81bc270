"""What a run needs from the data, derived once from its config, for the loader and the task."""

from dataclasses import dataclass
from typing import Optional, Tuple

from stkd_ros.config import Config, DistillFlowConfig
from stkd_ros.data.unlabeled import has_unlabeled_video
from stkd_ros.errors import InputError


@dataclass(frozen=True)
class DataNeeds:
    """
    What each training batch brings beyond the labeled key frame of every clip.

    ``frames``: 1 (frame t) or 2 (frames t and t+k) per clip. ``unlabeled``: clips of the
    config's unlabeled video join each batch. ``flow``: each clip brings its flow t -> t+k
    (``flows``) and the pixels it can be trusted on (``visible``), from this source. ``store``:
    a label store whose classes and confidence come with the clips (``targets``,
    ``confidence``). ``stores``: label stores whose frames, labeled by them, follow the
    labeled clips of each batch, ``stores_ratio`` times as many (a teacher's self-training:
    `stkd train-teacher --labels`).
    """

    frames: int = 1
    unlabeled: bool = False
    flow: Optional[DistillFlowConfig] = None
    store: Optional[str] = None
    stores: Tuple[str, ...] = ()
    stores_ratio: float = 1.0


def data_needs(cfg: Config, *, distill: bool) -> DataNeeds:
    """
    Return what a run of ``cfg`` needs: a supervised one (``distill`` False) the key frames.

    A distillation run takes unlabeled video when any term but cross-entropy is on (each has
    a target on a frame without labels), two frames when a term compares t and t+k or the
    teacher's two views are fused, the flow when the temporal term is on or the views are
    fused, and the label store ``data.labels``. Stops with one line when the terms ask for
    video that the config does not name.
    """
    if not distill:
        return DataNeeds()
    w, data = cfg.distill.weights, cfg.data
    if w.pseudo_label and not has_unlabeled_video(data):
        # Labeled frames teach with their own labels: pseudo-labels have nothing to teach.
        raise InputError('distill.weights.pseudo_label: no unlabeled video to learn from; give '
                         '--unlabeled-bag with --unlabeled-topic, data.unlabeled_video=true '
                         '(Cityscapes, CamVid) or data.synthetic.unlabeled_clips')
    if data.labels and not has_unlabeled_video(data):
        raise InputError(f'--labels {data.labels}: this run has no unlabeled video for the '
                         f'store to label')
    fuse = cfg.distill.fuse_views
    if fuse and (data.labels or not w.pseudo_label):
        raise InputError('distill.fuse_views: fuses the online labels of the teacher; it needs '
                         'distill.weights.pseudo_label and no label store (--labels), whose '
                         'classes `stkd label` fused already')
    return DataNeeds(
        frames=2 if any((w.temporal, w.temporal_kd, w.adversarial, fuse)) else 1,
        unlabeled=any((w.pixel, w.pairwise, w.temporal_kd, w.adversarial, w.pseudo_label,
                       w.temporal)),
        flow=cfg.distill.flow if w.temporal > 0 or fuse else None,
        store=data.labels)
