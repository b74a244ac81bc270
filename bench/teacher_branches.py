"""
Experiment: how good each of the teacher's outputs is on its own, as a distillation target.

The two-branch teacher returns its fused logits and those of its CNN and transformer branches;
pixel-wise distillation uses all three (`distill.pixel_branches`). Each is evaluated here like
a model of its own on the held-out clips (mIoU, TC, flicker, per-class IoU), with the exact
flow of the synthetic world unless the config says otherwise.
"""

import argparse

from report import emit
from stkd_ros.config import load_config
from stkd_ros.flow import build_flow
from stkd_ros.model_file import load_model_file
from stkd_ros.training.data import build_clips
from stkd_ros.training.evaluate import evaluate
from torch import nn

OUTPUTS = ('logits', 'cnn_logits', 'transformer_logits')


class OneOutput(nn.Module):
    """The teacher with one of its outputs presented as the logits."""

    def __init__(self, teacher: nn.Module, key: str):
        super().__init__()
        self.teacher, self.key = teacher, key

    def forward(self, x):
        return {'logits': self.teacher(x)[self.key]}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--teacher', required=True, help='two-branch teacher model file')
    parser.add_argument('--config', default='config/distill/synthetic.yaml')
    parser.add_argument('--set', action='append', default=[], help='config overrides')
    args = parser.parse_args()
    cfg = load_config(args.config, args.set)
    teacher, meta = load_model_file(args.teacher)
    clips = build_clips(cfg.data, 'val', clip_length=2, gap=cfg.data.eval_gap)
    flow = build_flow(cfg.evaluation.flow, **cfg.evaluation.flow_args)
    rows = []
    for key in OUTPUTS:
        r = evaluate(OneOutput(teacher, key), clips, input_size=meta['input_size'],
                     mean=meta['mean'], std=meta['std'], num_classes=meta['num_classes'],
                     class_names=meta['classes'], flow=flow, device='cpu')
        rows.append({'output': key, 'mIoU': f'{r["miou"]:.4f}', 'TC': f'{r["tc"]:.4f}',
                     'flicker': f'{r["flicker"]:.4f}',
                     **{c: f'{v:.3f}' for c, v in r['per_class_iou'].items()}})
    emit('teacher_branches', rows, ['output', 'mIoU', 'TC', 'flicker', *meta['classes']])


if __name__ == '__main__':
    main()
