"""
Benchmark: the teacher's labels at each precision and batch size, against fp32 one at a time.

A trained teacher (``--teacher``) labels the first frames of the config's never-labeled
streets as `stkd label` does (``label_sequence`` with the config's ``label`` settings: its
test-time augmentation, its fusion), once per precision (``teacher.precision``: fp32, bf16)
and batch size (``label.batch``: frames per teacher call). Each row gives the share of pixels
whose class, and whose stored confidence byte, equal the reference row's (fp32, batch 1: the
labels `stkd label` made before either option), the mean and largest difference of the
confidence bytes (of 255), whether every map is bit-identical to it,
the label mIoU against the world's truth, and seconds per frame at ``--threads`` torch
threads: wall time, and the process's CPU time (at one thread, what the labeling costs even
on a busy machine, where the wall time also counts the waits for a core). Labels do not
change where a row keeps ``classes_equal`` near 1 and its mIoU.

Restore the protocol's teacher: ``mkdir -p runs/teacher_aligned && git show
7654261:experiments/teachers/synthetic_video_aligned.safetensors >
runs/teacher_aligned/model.safetensors``; then, from the repository root:
  python bench/teacher_labels.py
"""

import argparse
import time

import numpy as np
from report import emit
from stkd_ros.config import load_config
from stkd_ros.data.unlabeled import unlabeled_streets
from stkd_ros.labeling.labeler import hard_labels, label_sequence
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.sources import video_sequences
from stkd_ros.metrics import ConfusionMatrix
from stkd_ros.model_file import load_model_file
from stkd_ros.teacher_precision import native_bf16
import torch


def label_frames(passes, sequences, frames: int, batch: int, links, radius: int):
    """Return the hard labels [(classes, confidence)] of the first ``frames`` of each street."""
    out = []
    for sequence in sequences:
        for _, probs in label_sequence(sequence, passes, range(frames), radius=radius,
                                       links=links, batch=batch):
            out.append(hard_labels(probs))
    return out


def agreement(labels, reference) -> dict:
    """How the hard labels [(classes, confidence)] of a row compare with the reference row's."""
    classes, confidence = (np.stack([pair[i] for pair in labels]) for i in (0, 1))
    ref_classes, ref_confidence = (np.stack([pair[i] for pair in reference]) for i in (0, 1))
    off = np.abs(confidence.astype(int) - ref_confidence)
    return {'classes_equal': float((classes == ref_classes).mean()),
            'confidence_equal': float((off == 0).mean()),
            'confidence_mean_diff': float(off.mean()), 'confidence_max_diff': int(off.max()),
            'bit_identical': bool((classes == ref_classes).all() and (off == 0).all())}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='config/distill/synthetic_video.yaml')
    parser.add_argument('--teacher', default='runs/teacher_aligned/model.safetensors')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--streets', type=int, default=8)
    parser.add_argument('--frames', type=int, default=12, help='first frames of each street')
    parser.add_argument('--precisions', default='fp32,bf16')
    parser.add_argument('--batches', default='1,4,8,16')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None, help='JSON folder (default bench/results)')
    parser.add_argument('--name', default='teacher_labels', help='the JSON file name')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    settings = cfg.label
    sequences = video_sequences(unlabeled_streets(cfg.data))[:args.streets]
    truth = [s.read(t)[1] for s in sequences for t in range(args.frames)]
    links = None
    if settings.fusion_radius:
        from stkd_ros.commands.label import _links
        links = _links(settings, 'cpu')
    model, meta = load_model_file(args.teacher, 'cpu')
    combos = [('fp32', 1)] + [(p, int(b)) for p in args.precisions.split(',')
                              for b in args.batches.split(',') if (p, int(b)) != ('fp32', 1)]
    reference, rows = None, []
    for precision, batch in combos:
        passes = TeacherPasses(model, meta, scales=settings.scales, flip=settings.flip,
                               precision=precision)
        start, cpu = time.perf_counter(), time.process_time()
        labels = label_frames(passes, sequences, args.frames, batch, links,
                              settings.fusion_radius)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        reference = reference or labels
        matrix = ConfusionMatrix(len(meta['classes']))
        for (classes, _), true in zip(labels, truth):
            matrix.update(torch.from_numpy(classes), torch.from_numpy(true))
        rows.append({'precision': precision, 'batch': batch, **agreement(labels, reference),
                     'label_miou': matrix.summary(meta['classes'])['miou'],
                     's_per_frame': seconds / len(labels), 'cpu_s_per_frame': cpu / len(labels)})
        print(rows[-1], flush=True)
    print(f'{args.teacher}: {len(truth)} frames ({args.streets} streets x {args.frames}) of '
          f'{args.config}, label scales {settings.scales}, flip {settings.flip}, fusion radius '
          f'{settings.fusion_radius}; {args.threads} thread(s); native bf16: '
          f'{native_bf16("cpu")}')
    emit(args.name, [dict(r, teacher=args.teacher, frames=len(truth)) for r in rows],
         ['precision', 'batch', 'classes_equal', 'confidence_equal', 'confidence_mean_diff',
          'confidence_max_diff', 'bit_identical',
          'label_miou', 's_per_frame', 'cpu_s_per_frame'], args.out)


if __name__ == '__main__':
    main()
