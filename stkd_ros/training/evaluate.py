"""Validation: mIoU (per class too), TC with and without occlusion mask, flicker, speed."""

from contextlib import contextmanager
import time

import numpy as np
from stkd_ros.flow.ground_truth import GroundTruthFlow
from stkd_ros.flow.occlusion import forward_backward_valid, photometric_valid
from stkd_ros.inference import class_map, model_input, Segmenter
from stkd_ros.metrics import ConfusionMatrix, TemporalConsistency
import torch


@contextmanager
def eval_mode(model):
    """Run a block with the model in eval mode, then restore its previous mode."""
    if isinstance(model, Segmenter):   # a deployed model: always in eval mode
        yield model
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def predict(model, frames: np.ndarray, size, mean, std, device) -> torch.Tensor:
    """
    Class ids (N, H, W) at the frames' own size, as the Segmenter a node uses gives them.

    Each frame goes through the model alone, as in a node, and through the same pre- and
    post-processing (``stkd_ros.inference``), so evaluation scores the masks a node publishes.
    ``model`` is a PyTorch module or a :class:`Segmenter` (any backend, e.g. an INT8 ONNX file).
    """
    masks = []
    for frame in frames:
        x = model_input(frame[None], size, mean, std)
        if isinstance(model, Segmenter):
            logits = model.logits(x)[0]
        else:
            logits = model(torch.from_numpy(x).to(device))['logits'][0].float().cpu().numpy()
        masks.append(torch.from_numpy(class_map(logits, frame.shape[:2])))
    return torch.stack(masks).long()


def _pair_flow(flow, clip):
    """Forward flow 0 -> 1 and an occlusion mask, as tensors (1, 2, H, W) and (1, H, W)."""
    fw = torch.from_numpy(np.ascontiguousarray(flow.between(clip, 0, 1))).permute(2, 0, 1)[None]
    if isinstance(flow, GroundTruthFlow):
        # Exact flow has no backward field here; check colour constancy instead.
        imgs = torch.from_numpy(clip.frames[:2]).permute(0, 3, 1, 2).float() / 255.0
        valid = photometric_valid(imgs[:1], imgs[1:2], fw, threshold=0.08)
    else:
        bw = torch.from_numpy(flow.between(clip, 1, 0)).permute(2, 0, 1)[None]
        valid = forward_backward_valid(fw, bw)
    return fw, valid


@torch.no_grad()
def evaluate(model, clips, *, input_size, mean, std, num_classes, class_names, flow,
             device, max_clips=None) -> dict:
    """Evaluate on clips of two frames; frame 0 (and frame 1 where labeled) scores mIoU."""
    with eval_mode(model):
        return _evaluate(model, clips, input_size, mean, std, num_classes, class_names, flow,
                         device, max_clips)


def _evaluate(model, clips, input_size, mean, std, num_classes, class_names, flow, device,
              max_clips):
    cm, tc = ConfusionMatrix(num_classes), TemporalConsistency(num_classes)
    forward_s, frames_done = 0.0, 0
    n = len(clips) if max_clips is None else min(len(clips), max_clips)
    for i in range(n):
        clip = clips[i]
        start = time.perf_counter()
        pred = predict(model, clip.frames[:2], input_size, mean, std, device)
        forward_s += time.perf_counter() - start
        frames_done += len(pred)
        labels = torch.from_numpy(clip.labels[:2]).long()
        cm.update(pred, labels)
        if len(pred) > 1:
            fw, valid = _pair_flow(flow, clip)
            tc.update(pred[:1], pred[1:2], fw, valid)
    out = cm.summary(class_names)
    out.update(tc.summary(class_names))
    out['ms_per_frame'] = 1e3 * forward_s / max(frames_done, 1)
    out['fps'] = frames_done / forward_s if forward_s else float('nan')
    out['clips'] = n
    return out
