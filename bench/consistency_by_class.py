"""
Experiment: which way the motion-consistency loss pushes each class.

For a model file, on held-out pairs of consecutive frames with the world's exact flow, the
gradient of the weighted consistency term (`distill.temporal`, ETC) on the logit of each
pixel's labeled class, beside the gradient of the cross-entropy on the same logit, both
weighted as in `stkd distill`. Cross-entropy always raises the labeled class; a negative
consistency push on a class means the temporal term works against predicting that class
where it is, and a ratio below -1 means it wins there.
"""

import argparse

from report import emit
from stkd_ros.config import load_config
from stkd_ros.data.classes import IGNORE_INDEX
from stkd_ros.flow import build_flow
from stkd_ros.flow.occlusion import photometric_valid
from stkd_ros.losses.temporal import motion_consistency
from stkd_ros.model_file import load_model_file
from stkd_ros.training.data import build_clips
from stkd_ros.training.evaluate import to_input
from stkd_ros.training.tasks import cross_entropy
import torch


def pushes(model, clip, meta, flow, cfg):
    """Return (labels, consistency push, cross-entropy push), each (2, H, W), for one pair."""
    x = to_input(clip.frames[:2], meta['input_size'], meta['mean'], meta['std'], 'cpu')
    logits = model(x)['logits'].detach().requires_grad_(True)
    labels = torch.from_numpy(clip.labels[:2]).long()
    fw = torch.from_numpy(flow.between(clip, 0, 1)).permute(2, 0, 1)[None].float()
    images = torch.from_numpy(clip.frames[:2]).permute(0, 3, 1, 2).float() / 255.0
    valid = photometric_valid(images[:1], images[1:], fw, cfg.photometric_threshold)
    on_label = labels.masked_fill(labels == IGNORE_INDEX, 0)[:, None]

    def push(loss):
        (grad,) = torch.autograd.grad(loss, logits)
        return -grad.gather(1, on_label)[:, 0]
    consistency = motion_consistency(logits[:1], logits[1:], fw, valid, cfg.temporal_pool)
    temporal = push(cfg.temporal * consistency)
    ce = push(cfg.ce * cross_entropy(logits, labels))
    return labels, temporal, ce


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', required=True, help='model file')
    parser.add_argument('--config', default='config/distill/synthetic.yaml')
    parser.add_argument('--set', action='append', default=[], help='config overrides')
    parser.add_argument('--name', default='consistency_by_class', help='JSON file name')
    args = parser.parse_args()
    cfg = load_config(args.config, args.set)
    model, meta = load_model_file(args.model)
    clips = build_clips(cfg.data, 'val', clip_length=2, gap=cfg.data.eval_gap)
    flow = build_flow('ground_truth')
    k = meta['num_classes']
    count, temporal_sum, ce_sum = torch.zeros(k), torch.zeros(k), torch.zeros(k)
    pixels = 0
    for i in range(len(clips)):
        labels, temporal, ce = pushes(model, clips[i], meta, flow, cfg.distill)
        known = labels != IGNORE_INDEX
        # Both terms are means over a batch's pixels; per pixel of this pair, the push scales
        # with the pair's size, so sums over pixels are scaled back by it.
        scale = labels.numel()
        sums = ((count, torch.ones_like(temporal)), (temporal_sum, temporal * scale),
                (ce_sum, ce * scale))
        for total, values in sums:
            total.index_add_(0, labels[known], values[known])
        pixels += int(known.sum())
    rows = []
    for c, cls in enumerate(meta['classes']):
        n = float(count[c])
        rows.append({'class': cls, 'pixel share': f'{n / pixels:.4f}',
                     'consistency push': f'{temporal_sum[c] / max(n, 1):+.4f}',
                     'CE push': f'{ce_sum[c] / max(n, 1):+.4f}',
                     'ratio': f'{temporal_sum[c] / ce_sum[c]:+.3f}' if n else 'n/a'})
    emit(args.name, rows, ['class', 'pixel share', 'consistency push', 'CE push', 'ratio'])
    d = cfg.distill
    print(f'{args.model}: {len(clips)} pairs, exact flow, temporal weight {d.temporal} (pool '
          f'{d.temporal_pool}), ce weight {d.ce}; pushes per labeled pixel, x pixels per pair')


if __name__ == '__main__':
    main()
