"""
The flow t -> t+k of training clips, and the pixels of frame t it can be trusted on.

Where it comes from is ``distill.flow`` (:func:`training_flow`): the synthetic world's ground
truth, or an estimator whose fields are cached on disk. :class:`FlowClips` attaches it to
each clip; :class:`VisibleAlongFlow`, a clip transform, marks the pixels it holds on.
"""

from pathlib import Path

from stkd_ros.config import DataConfig, DistillFlowConfig
from stkd_ros.flow import build_flow
from stkd_ros.flow.cache import FlowCache
from stkd_ros.flow.visible import photometric_visible


def training_flow(flow: DistillFlowConfig, data: DataConfig, run_dir):
    """
    Return the flow source of ``flow`` (``distill.flow``) for the clips of ``data``.

    That is the ground truth, or an estimator whose fields are cached in ``flow.cache``
    (default ``run_dir/flow_cache``), keyed by the dataset.
    """
    estimator = build_flow(flow.method, **flow.args)
    if flow.method == 'ground_truth':
        return estimator
    key = data.dataset + '|' + (str(data.root) if data.root else str(data.synthetic))
    return FlowCache(flow.cache or Path(run_dir) / 'flow_cache', estimator, key)


class FlowClips:
    """
    Attach the flow from frame 0 to frame 1 to every clip, from any flow source.

    With no source (a run that reads no flow) every clip's own flow is dropped: the
    synthetic world's clips bring theirs and a bag's none, and the samples of one batch
    must have the same entries.
    """

    def __init__(self, clips, source=None):
        self.clips, self.source = clips, source

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        clip = self.clips[index]
        clip.flows = None if self.source is None else self.source.between(clip, 0, 1)[None]
        return clip


class VisibleAlongFlow:
    """
    A clip transform: mark the pixels of frame 0 that frame 1 shows too (``clip.visible``).

    The photometric check (colour constancy along the flow) on the uint8 frames after the
    geometric transforms, and nothing on crop padding: the pixels the temporal term trusts.
    """

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, clip):
        seen = photometric_visible(clip.frames[0], clip.frames[1], clip.flows[0], self.threshold)
        clip.visible = seen if clip.valid is None else seen & clip.valid
        return clip
