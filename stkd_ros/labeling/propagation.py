"""
A labeled frame's truth carried along the flow to the other frames of its sequence.

Label propagation (Zhu et al. CVPR 2019, "Improving Semantic Segmentation via Video
Propagation and Label Relaxation"), frame by frame, chaining the flows: going out from a
labeled frame k, frame t's flow to k is its flow to its neighbour s (t - 1 going forward,
t + 1 going back) followed by s's flow to k, read bilinearly (:func:`compose`); frame t
takes at pixel p the label k has at the end of that chain, the nearest pixel
(``stkd_ros.flow.warp.warp_labels``). Labels are sampled once, from k: chaining the labels
themselves, nearest pixel at every link, drifts at each one and thin classes lose most (the
protocol world's 40 labeled streets, label mIoU on the carried frames: DIS 0.770 chaining
labels, 0.783 chaining flows; the exact flow 0.769 and 0.816). A pixel is
carried only where its flow target lies inside the image and each link passes the
occlusion check; elsewhere it is unlabeled (``IGNORE_INDEX``), and a point once lost stays
lost further along the chain.

Each frame is carried from its nearest labeled frame (the earlier one on a tie), so a
sequence labeled at several frames (CamVid's 1 Hz) chains from each outward to the middle.
The flow is what a user has (DIS, RAFT, ...); the synthetic world's exact flow is a check.
"""

from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.errors import InputError
from stkd_ros.flow.base import build_flow
from stkd_ros.flow.pairs import EXACT_FLOW_THRESHOLD
from stkd_ros.flow.visible import forward_backward_visible, photometric_visible, sample
from stkd_ros.flow.warp import warp_labels
import torch

#: Occlusion checks: forward-backward consistency of the flow both ways, colour constancy
#: along the flow (mean absolute RGB difference below a threshold), or both at once.
CHECKS = ('forward-backward', 'photometric', 'both')


def carry(labels: np.ndarray, flow: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """
    Frame t's labels from frame s's: (H, W) uint8 ``labels`` of s, (H, W, 2) flow t -> s.

    s is the labeled frame, the flow the chain's (:func:`compose`). ``visible`` (H, W) bool
    marks the pixels of t still carried; the others, and those whose target leaves the
    image, get ``IGNORE_INDEX``.
    """
    if not labels.shape == flow.shape[:2] == visible.shape:
        raise InputError(f'carrying labels: label map {labels.shape}, flow {flow.shape[:2]} '
                         f'and occlusion mask {visible.shape} differ in size')
    warped = warp_labels(torch.from_numpy(labels.astype(np.int64))[None],
                         torch.from_numpy(np.ascontiguousarray(flow, np.float32))
                         .permute(2, 0, 1)[None])[0].numpy()
    return np.where(visible, warped, IGNORE_INDEX).astype(np.uint8)


class CarryFlow:
    """
    Flow from frame t of a sequence to its neighbour s, and the pixels of t it can be trusted on.

    ``method`` is a flow estimator's name (``stkd_ros.flow.build_flow``, with ``settings``) or
    ``ground_truth``: the exact flow of a source that has it (the synthetic world), an oracle.
    ``check`` is one of :data:`CHECKS`; ``threshold`` the photometric check's.
    """

    def __init__(self, method: str = 'dis', *, check: str = 'photometric',
                 threshold: float = EXACT_FLOW_THRESHOLD, **settings):
        if check not in CHECKS:
            raise InputError(f'unknown occlusion check {check!r}; expected one of '
                             f'{", ".join(CHECKS)}')
        if not threshold > 0:
            raise InputError(f'photometric threshold: expected a value above 0, got '
                             f'{threshold}')
        self.method, self.check, self.threshold = method, check, threshold
        self.exact = method == 'ground_truth'
        self.estimator = None if self.exact else build_flow(method, **settings)

    @property
    def oracle(self) -> bool:
        return self.exact

    def _flows(self, sequence, t: int, s: int, frame_t, frame_s):
        """Flow t -> s, and s -> t where the forward-backward check needs it (else None)."""
        both = self.check != 'photometric'
        if not self.exact:
            if both:
                return self.estimator.both_ways(frame_t, frame_s)
            return self.estimator(frame_t, frame_s), None
        exact = getattr(sequence.source, 'exact_flow', None)
        if exact is None:
            raise InputError(f'{sequence.name}: exact flow exists in the synthetic world only; '
                             f'use an estimated flow (dis, raft)')
        return exact(sequence.name, t, s), exact(sequence.name, s, t) if both else None

    def link(self, sequence, t: int, s: int, frame_t: np.ndarray, frame_s: np.ndarray):
        """Return (flow t -> s (H, W, 2) float32, visible (H, W) bool) for frames t and s."""
        forward, backward = self._flows(sequence, t, s, frame_t, frame_s)
        forward = np.asarray(forward, np.float32)
        visible = np.ones(forward.shape[:2], bool)
        if backward is not None:
            visible &= forward_backward_visible(forward, backward)
        if self.check != 'forward-backward':
            visible &= photometric_visible(frame_t, frame_s, forward, self.threshold)
        return forward, visible


def nearest_labeled(frames: int, labeled: Iterable[int]) -> List[int]:
    """For each frame of a sequence, its nearest labeled frame (the earlier one on a tie)."""
    keys = sorted(set(labeled))
    if not keys:
        raise InputError('a sequence to carry labels along needs a labeled frame')
    return [min(keys, key=lambda k: (abs(t - k), k)) for t in range(frames)]


def chains(frames: int, labeled: Iterable[int]) -> List[List[int]]:
    """
    Return the carrying order: from each labeled frame, the frames carried from it, going out.

    Each chain starts at its labeled frame; a frame's predecessor in its chain is the
    neighbour it takes its labels from.
    """
    source = nearest_labeled(frames, labeled)
    out = []
    for k in sorted(set(labeled)):
        for step in (1, -1):
            chain = [k]
            while 0 <= chain[-1] + step < frames and source[chain[-1] + step] == k:
                chain.append(chain[-1] + step)
            out.append(chain)
    return out


def compose(back: np.ndarray, alive: np.ndarray, flow: np.ndarray,
            visible: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """
    One link of a chain: frame t's flow to the labeled frame k, through its neighbour s.

    ``back`` (H, W, 2) is s's flow to k and ``alive`` (H, W) bool the pixels of s still
    carried; ``flow`` (H, W, 2) is t -> s and ``visible`` where it passed the occlusion
    check. A pixel p of t lands at q = p + flow(p) in s and at q + back(q) in k, ``back`` read
    bilinearly from the alive neighbours of q alone; p is carried where it is visible and
    alive neighbours hold at least half of q's bilinear weight. Returns t's (back, alive).
    """
    summed = sample(np.dstack([back * alive[..., None], alive]).astype(np.float32), flow)
    weight = summed[..., 2]
    through = summed[..., :2] / np.maximum(weight, 1e-6)[..., None]
    return np.asarray(flow, np.float32) + through, visible & (weight >= 0.5)


def carry_sequence(sequence, labeled: Dict[int, np.ndarray], flow: CarryFlow, *,
                   todo: Optional[Iterable[int]] = None
                   ) -> Iterator[Tuple[int, np.ndarray, int]]:
    """
    Yield (t, labels (H, W) uint8, distance from its labeled frame) for each frame of ``todo``.

    ``sequence`` reads frames (``read(t)`` -> (RGB, truth or None); labeling.sources.Sequence);
    ``labeled`` maps the labeled frames to their label maps. ``todo`` (default: every frame)
    are the frames wanted; a chain is followed from its labeled frame as far as its last
    frame wanted, so a resumed run gives what an unbroken one does.
    """
    frames = sequence.frames
    todo = set(range(frames)) if todo is None else set(todo)
    for k, label in labeled.items():
        size = sequence.size()
        if label.shape != tuple(size):
            raise InputError(f'{sequence.name}: the label map of frame {k} is '
                             f'{label.shape[0]}x{label.shape[1]}, its frames '
                             f'{size[0]}x{size[1]}')
    for chain in chains(frames, labeled):
        if not todo.intersection(chain):
            continue
        k = chain[0]
        if k in todo:
            todo.discard(k)        # the first of its two chains gives it
            yield k, labeled[k], 0
        back = np.zeros(labeled[k].shape + (2,), np.float32)
        alive = np.ones(labeled[k].shape, bool)
        frame_prev = sequence.read(k)[0]
        for i, t in enumerate(chain[1:], 1):
            if not todo.intersection(chain[i:]):
                break
            frame_t = sequence.read(t)[0]
            back, alive = compose(back, alive, *flow.link(sequence, t, chain[i - 1], frame_t,
                                                          frame_prev))
            frame_prev = frame_t
            if t in todo:
                yield t, carry(labeled[k], back, alive), abs(t - k)
