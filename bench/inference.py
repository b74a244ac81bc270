"""
Benchmark: parameters, GFLOPs and latency of each student and the teacher.

PyTorch and ONNX Runtime, beside torchvision's own lraspp_mobilenet_v3_large measured in the
same run.
"""

import argparse
from pathlib import Path
import tempfile

from report import emit, median_ms
from stkd_ros.commands.export import LogitsOnly
from stkd_ros.models import build_model
from stkd_ros.models.registry import STUDENTS
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation import lraspp_mobilenet_v3_large


class TorchvisionLRASPP(torch.nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                             num_classes=num_classes)

    def forward(self, x):
        return {'logits': self.net(x)['out']}


def measure(name, model, size, repeats, onnx_dir):
    import onnxruntime as ort
    model = LogitsOnly(model).eval()
    x = torch.randn(1, 3, *size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    with torch.inference_mode():
        torch_ms = median_ms(lambda: model(x), repeats)
    path = Path(onnx_dir) / f'{name}_{size[0]}x{size[1]}.onnx'
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=['image'],
                      output_names=['logits'], opset_version=17)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    feed = {'image': x.numpy()}
    ort_ms = median_ms(lambda: session.run(None, feed), repeats)
    return {'model': name, 'size': f'{size[0]}x{size[1]}',
            'params_m': sum(p.numel() for p in model.parameters()) / 1e6,
            # FlopCounterMode counts a multiply-add as 2 FLOPs.
            'gflops': counter.get_total_flops() / 1e9, 'torch_ms': torch_ms, 'ort_ms': ort_ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--sizes', default='360x480,512x1024')
    parser.add_argument('--classes', type=int, default=11)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]
    models = {'torchvision_lraspp (reference)': TorchvisionLRASPP(args.classes)}
    models.update({name: build_model(name, args.classes) for name in STUDENTS})
    models['teacher (tiny)'] = build_model('teacher', args.classes, size='tiny')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            ref = None
            for name, model in models.items():
                row = measure(name.split(' ')[0], model, size, args.repeats, tmp)
                row['model'] = name
                ref = ref or row
                row['torch_vs_ref'] = row['torch_ms'] / ref['torch_ms']
                row['ort_vs_ref'] = row['ort_ms'] / ref['ort_ms']
                rows.append(row)
                print(f'{name} {row["size"]}: {row["torch_ms"]:.1f} ms torch, '
                      f'{row["ort_ms"]:.1f} ms ort', flush=True)
    emit('inference', rows, ['model', 'size', 'params_m', 'gflops', 'torch_ms', 'ort_ms',
                             'torch_vs_ref', 'ort_vs_ref'], args.out)


if __name__ == '__main__':
    main()
