"""
Benchmark: the deploy paths of the students on this CPU, beside torchvision's LR-ASPP.

Rows, at each ``--sizes`` input size, batch 1, ``--threads`` threads: each of ``--students``
(default: the default student, LR-ASPP MobileNetV3, and Fast-SCNN, built for INT8; random
weights, latency only) in PyTorch FP32, ONNX Runtime FP32 and INT8 (the QDQ file of
``stkd export --int8``), OpenVINO f32, bf16 (where the CPU has it) and INT8 (the same QDQ
file; the layers it leaves in float at OpenVINO's default precision), and the reference:
torchvision's ``lraspp_mobilenet_v3_large`` (random weights, 11 classes) exported to ONNX and
run in ONNX Runtime FP32. Every row runs through the Segmenter as segment_node runs it
(``logits`` of a model input: the network and its output), all in one process, the
repetitions interleaved (one call of each row in turn), so that a busy moment of a shared
machine touches every row alike; each row's figure is its median. ``vs_ref`` is the
reference's time over the row's, measured in the same run.

``rss_mb``: the resident memory (VmRSS) of a fresh process that loads only that backend and
model and segments one frame of the input size, as a node on that backend would.

The issue's target (47): the best deploy path at 512x1024 at least 2.7x faster than the
reference; the ``target`` column marks each row at 512x1024 met or missed and names the best.
Run it on quiet cores: the ratios hold on a shared machine better than the times do.
"""

import argparse
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time

from inference import TorchvisionLRASPP
import numpy as np
from random_model import random_model_file
from report import emit
from stkd_ros.commands.export import export_onnx, LogitsOnly, write_metadata
from stkd_ros.commands.quantize import quantize_int8
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import read_metadata
import torch

# The default student (config/distill/*.yaml) and the one built for CPUs (issue 47).
STUDENTS = ('lraspp_mobilenetv3', 'fast_scnn')
REFERENCE = 'torchvision lraspp, onnxruntime fp32 (reference)'
TARGET_SIZE, TARGET_SPEEDUP = '512x1024', 2.7

# A process that loads one backend and segments one frame, then says its resident memory.
RSS_SCRIPT = """
import sys
import numpy as np
from stkd_ros.inference import Segmenter
backend, path, precision, threads, h, w = sys.argv[1:]
seg = Segmenter(path, backend=backend, threads=int(threads), precision=precision or None)
seg.segment(np.random.default_rng(0).integers(0, 255, (int(h), int(w), 3), dtype=np.uint8))
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
print(int(status['VmRSS'].split()[0]) / 1024)
"""


def deploy_paths(size, folder, calibration, bf16, students=STUDENTS) -> dict:
    """Row name -> (backend, file, precision) for each student and the reference at ``size``."""
    folder = Path(folder)
    tag = f'{size[0]}x{size[1]}'
    paths = {}
    for arch in students:
        model = random_model_file(folder / f'{arch}_{tag}.safetensors', arch, size)
        fp32 = export_onnx(model, folder / f'{arch}_{tag}.onnx')
        int8 = quantize_int8(model, folder / f'{arch}_{tag}.int8.onnx', calibration)
        if not paths:
            paths[REFERENCE] = ('onnxruntime',
                                reference_onnx(folder / f'reference_{tag}.onnx', model), None)
        paths.update({
            f'{arch}, torch fp32': ('torch', model, None),
            f'{arch}, onnxruntime fp32': ('onnxruntime', fp32, None),
            f'{arch}, onnxruntime int8': ('onnxruntime', int8, None),
            f'{arch}, openvino f32': ('openvino', fp32, 'f32'),
            **({f'{arch}, openvino bf16': ('openvino', fp32, 'bf16')} if bf16 else {}),
            f'{arch}, openvino int8 (rest {"bf16" if bf16 else "f32"})': ('openvino', int8,
                                                                          None),
        })
    return paths


def reference_onnx(path, student_file):
    """Torchvision's LR-ASPP at the student's input size, as an ONNX file the Segmenter runs."""
    meta = read_metadata(student_file)
    model = LogitsOnly(TorchvisionLRASPP(meta['num_classes'])).eval()
    x = torch.zeros(1, 3, *meta['input_size'])
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=['image'],
                      output_names=['logits'], opset_version=17,
                      dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}})
    # The student's metadata (classes, input size, normalization) lets the Segmenter run it.
    write_metadata(path, {**meta, 'arch': 'torchvision_lraspp_mobilenet_v3_large'})
    return path


def interleaved_ms(calls: dict, repeats: int, warmup: int = 2) -> dict:
    """Median milliseconds of each call, timed one call of each in turn ``repeats`` times."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def resident_mb(backend, path, precision, threads, size) -> float:
    """Resident memory (MB) of a fresh process that loads this backend and segments a frame."""
    proc = subprocess.run([sys.executable, '-c', RSS_SCRIPT, backend, str(path),
                           precision or '', str(threads), str(size[0]), str(size[1])],
                          capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[-1])


def measure(size, args, bf16) -> list:
    tag = f'{size[0]}x{size[1]}'
    with tempfile.TemporaryDirectory() as tmp:
        paths = deploy_paths(size, tmp, args.calibration, bf16, args.students)
        segmenters = {name: Segmenter(path, backend=backend, threads=args.threads,
                                      precision=precision)
                      for name, (backend, path, precision) in paths.items()}
        x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
        ms = interleaved_ms({name: (lambda s=s: s.logits(x)) for name, s in segmenters.items()},
                            args.repeats)
        rows = [{'size': tag, 'path': name, 'backend': backend,
                 'precision': segmenters[name].precision
                 + (' + int8' if 'quantization' in segmenters[name].meta else ''),
                 'ms': ms[name], 'fps': 1e3 / ms[name], 'vs_ref': ms[REFERENCE] / ms[name],
                 'rss_mb': None if args.skip_memory else resident_mb(
                     backend, path, precision, args.threads, size)}
                for name, (backend, path, precision) in paths.items()]
    if tag == TARGET_SIZE:
        best = max((r for r in rows if r['path'] != REFERENCE), key=lambda r: r['vs_ref'])
        for r in rows:
            if r['path'] != REFERENCE:
                r['target'] = ('met' if r['vs_ref'] >= TARGET_SPEEDUP else 'missed') + (
                    ' (best path)' if r is best else '')
    return rows


def students_arg(text: str) -> tuple:
    """Parse ``--students``: comma-separated names of the registry's students."""
    from stkd_ros.models.registry import STUDENTS as KNOWN
    names = tuple(n.strip() for n in text.split(',') if n.strip())
    unknown = [n for n in names if n not in KNOWN]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f'expected students among {", ".join(KNOWN)}, got '
                                         f'{text!r}')
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='360x480,512x1024,1024x2048')
    parser.add_argument('--students', type=students_arg, default=STUDENTS,
                        help='comma-separated student archs, each with every deploy path '
                             f'(default {",".join(STUDENTS)})')
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--calibration', type=int, default=16,
                        help='calibration frames of the INT8 export (latency only)')
    parser.add_argument('--skip-memory', action='store_true',
                        help='no resident-memory column (saves a process per row)')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    import openvino as ov
    from stkd_ros.backends.openvino_model import cpu_has_bf16
    bf16 = cpu_has_bf16(ov.Core())
    rows = []
    for size in [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]:
        for r in measure(size, args, bf16):
            print(f'{r["size"]} {r["path"]}: {r["ms"]:.1f} ms, {r["vs_ref"]:.2f}x', flush=True)
            rows.append(r)
    emit('deploy', rows, ['size', 'path', 'precision', 'ms', 'fps', 'vs_ref', 'rss_mb',
                          'target'], args.out)
    best = [r for r in rows if 'best' in r.get('target', '')]
    if best:
        r = best[0]
        print(f'\ntarget (issue 47): best path at {TARGET_SIZE} {r["path"]}, '
              f'{r["vs_ref"]:.2f}x the reference (>= {TARGET_SPEEDUP}x): '
              f'{r["target"].split()[0]}')


if __name__ == '__main__':
    main()
