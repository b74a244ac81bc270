"""
Benchmark: what each deploy path does to a trained model's accuracy on the held-out streets.

One trained model file (``--model``), scored on its config's validation split (``--config``,
e.g. the run's own ``config.yaml``) through the Segmenter as segment_node runs it, on every
deploy path `bench/deploy.py` times: PyTorch FP32 (the reference), ONNX Runtime FP32 and INT8
(`stkd export --int8`, QDQ, ``--calibration`` training frames), OpenVINO f32, bf16 and INT8
(the same QDQ file). Each row gives mIoU, TC and flicker, and the mIoU points lost against
PyTorch. Target (issue 47): at most 1 mIoU point lost on every path.

Accuracy, not speed: it may run beside other work.
"""

import argparse
from pathlib import Path
import tempfile

from report import emit
from stkd_ros.commands.export import export_onnx
from stkd_ros.commands.quantize import quantize_int8
from stkd_ros.training.commands import evaluate_model

TARGET_POINTS = 1.0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='a trained model file')
    parser.add_argument('--config', required=True, help='the config whose val split scores it')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--calibration', type=int, default=64)
    parser.add_argument('--out', default=None, help='JSON folder (default bench/results)')
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(args.model, Path(tmp) / 'model.onnx')
        int8 = quantize_int8(args.model, Path(tmp) / 'model.int8.onnx', args.calibration)
        paths = [('PyTorch FP32', args.model, 'torch', None),
                 ('ONNX Runtime FP32', fp32, 'onnxruntime', None),
                 ('ONNX Runtime INT8', int8, 'onnxruntime', None),
                 ('OpenVINO f32', fp32, 'openvino', 'f32'),
                 ('OpenVINO bf16', fp32, 'openvino', 'bf16'),
                 ('OpenVINO INT8', int8, 'openvino', 'bf16')]
        reference = None
        for name, file, backend, precision in paths:
            result = evaluate_model(file, args.config, overrides=args.set, backend=backend,
                                    precision=precision)
            row = {'path': name, 'miou': result['miou'], 'tc': result['tc'],
                   'flicker': result['flicker']}
            reference = reference or row
            row['miou_points_lost'] = 100 * (reference['miou'] - row['miou'])
            if row is not reference:
                row['target'] = 'met' if row['miou_points_lost'] <= TARGET_POINTS else 'missed'
            rows.append(row)
            print(f'{name}: mIoU {row["miou"]:.4f}, flicker {row["flicker"]:.4f}', flush=True)
    print(f'{args.model} on {args.config} ({", ".join(args.set) or "no overrides"})')
    emit('backend_accuracy', [dict(r, model=str(args.model)) for r in rows],
         ['path', 'miou', 'tc', 'flicker', 'miou_points_lost', 'target'], args.out)


if __name__ == '__main__':
    main()
