"""ONNX export matches PyTorch; the Segmenter maps frames of any size to masks of that size."""

import numpy as np
import pytest
from stkd_ros.commands.export import export_onnx
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import save_model_file
from stkd_ros.models import build_model
from stkd_ros.models.registry import STUDENTS
import torch


def _model_file(tmp_path, arch, num_classes=5):
    torch.manual_seed(0)
    model = build_model(arch, num_classes).eval()
    # Non-trivial batch-norm statistics, so the exported graph is really tested.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f'{arch}.safetensors'
    save_model_file(path, model, {
        'arch': arch, 'arch_args': {}, 'num_classes': num_classes,
        'classes': [f'c{i}' for i in range(num_classes)],
        'palette': [[40 * i, 0, 0] for i in range(num_classes)], 'input_size': [64, 128],
        'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]})
    return path


@pytest.mark.parametrize('arch', STUDENTS)
def test_onnx_matches_pytorch_within_1e4(tmp_path, arch):
    import onnxruntime as ort
    path = _model_file(tmp_path, arch)
    onnx_path = export_onnx(path, tmp_path / f'{arch}.onnx')
    seg = Segmenter(path)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 128)).astype(np.float32)
    ref = seg.logits(x)
    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    out = session.run(None, {'image': x})[0]
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4


def test_segmenter_any_size_and_both_backends_agree(tmp_path):
    path = _model_file(tmp_path, 'bisenet_lite')
    onnx_path = export_onnx(path, tmp_path / 'm.onnx')
    torch_seg = Segmenter(path)
    ort_seg = Segmenter(path, backend='onnxruntime', onnx_path=onnx_path)
    rng = np.random.default_rng(1)
    for h, w in ((64, 128), (37, 91), (300, 500)):
        frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        mask = torch_seg.segment(frame)
        assert mask.shape == (h, w) and mask.dtype == np.uint8 and mask.max() < 5
        assert (ort_seg.segment(frame) == mask).mean() > 0.999
    color = torch_seg.colorize(mask)
    assert color.shape == (300, 500, 3)
    np.testing.assert_array_equal(color[mask == 1][0], [40, 0, 0])
    assert torch_seg.overlay(frame, mask).shape == frame.shape


def test_segmenter_rejects_bad_frames_and_files(tmp_path):
    seg = Segmenter(_model_file(tmp_path, 'bisenet_lite'))
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        seg.segment(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match='unknown backend'):
        Segmenter(tmp_path / 'x', backend='tensorrt')
    with pytest.raises(FileNotFoundError):
        Segmenter(tmp_path / 'missing.safetensors')
