"""Fast-SCNN: shapes, learning, `stkd distill` with it, ONNX and a QDQ INT8 export that runs."""

import csv
import subprocess

from cli_helpers import _cmd, CONFIG
import numpy as np
import pytest
from stkd_ros.commands.export import export_onnx
from stkd_ros.commands.quantize import quantize_int8
from stkd_ros.config import load_config
from stkd_ros.data.datasets import build_clips
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import read_metadata
from stkd_ros.models import build_model
from stkd_ros.training.commands import train_student
from test_distill import FULL_SETS
from test_quantize import TINY as QUANTIZE_TINY
import torch

# The tiny world and short training of test_quantize.py, for this student: far enough from
# random that its two best classes rarely tie, so INT8's argmax has something to agree with.
TINY = [s for s in QUANTIZE_TINY if not s.startswith('student.arch=')]
TINY.append('student.arch=fast_scnn')
# Share of held-out pixels whose INT8 argmax must equal FP32's. INT8 moves each logit by a
# fraction of its range, so only pixels whose two best classes nearly tie may flip; after 60
# steps those are a thin band along class borders (measured here: 0.989 of the pixels of the 6
# frames, each frame at least 0.983; mIoU 0.317 FP32, 0.316 INT8). 0.97 leaves room for another
# machine's kernels, while a mis-quantized layer (a wrong scale flips whole regions) fails.
MIN_INT8_AGREEMENT = 0.97


@pytest.mark.parametrize('size', [(64, 128), (37, 91), (65, 129), (33, 33)])
def test_logits_at_any_input_size_and_features_at_an_eighth(size):
    torch.manual_seed(0)
    out = build_model('fast_scnn', 11)(torch.randn(2, 3, *size))
    assert out['logits'].shape == (2, 11, *size)
    h, w = size
    # 1/8 by three stride-2 convolutions (padding 1 rounds up).
    assert out['features'].shape == (2, 128, -(-h // 8), -(-w // 8))


def test_a_few_steps_fit_a_tiny_batch():
    torch.manual_seed(0)
    model = build_model('fast_scnn', 3)
    # Three classes as coarse blocks, each with its own colour plus noise.
    labels = torch.randint(0, 3, (4, 8, 16)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    colours = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    x = colours[labels].permute(0, 3, 1, 2) + 0.3 * torch.randn(4, 3, 64, 128)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(x)['logits'], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_pretrained_loads_matching_tensors_and_leaves_another_classifier_fresh(tmp_path):
    torch.manual_seed(0)
    source = build_model('fast_scnn', 19)
    torch.save(source.state_dict(), tmp_path / 'fast_scnn.pth')
    model = build_model('fast_scnn', 5, pretrained=str(tmp_path / 'fast_scnn.pth'))
    torch.testing.assert_close(model.downsample[0][0].weight, source.downsample[0][0].weight)
    torch.testing.assert_close(model.classifier[1][1][0].weight,
                               source.classifier[1][1][0].weight)
    assert model.classifier[-1].weight.shape == (5, 128, 1, 1)


@pytest.mark.slow
def test_stkd_distill_trains_fast_scnn_into_a_model_file_the_segmenter_runs(tmp_path):
    subprocess.run(_cmd('train-teacher', tmp_path / 't', 2, ['train.eval_every=2']),
                   check=True, capture_output=True)
    # The full method: the pair-wise and temporal terms read the student's features.
    args = _cmd('distill', tmp_path / 'd', 2, ['train.eval_every=2', 'student.arch=fast_scnn',
                                               *FULL_SETS])
    args += ['--teacher', str(tmp_path / 't' / 'model.safetensors')]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / 'd' / 'metrics.csv', newline='') as f:
        tags = {r['tag'] for r in csv.DictReader(f)}
    assert {'train/kd_pairwise', 'train/temporal_kd', 'val/miou'} <= tags
    model = tmp_path / 'd' / 'model.safetensors'
    assert read_metadata(model)['arch'] == 'fast_scnn'
    seg = Segmenter(model)
    frame = np.random.default_rng(0).integers(0, 255, (90, 170, 3), dtype=np.uint8)
    mask = seg.segment(frame)
    assert mask.shape == (90, 170) and mask.dtype == np.uint8
    assert mask.max() < read_metadata(model)['num_classes']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('fast_scnn')
    train_student(CONFIG, out, 60, TINY)
    model = out / 'model.safetensors'
    return model, export_onnx(model, out / 'fp32.onnx'), quantize_int8(model, out / 'int8.onnx',
                                                                       frames=16)


def _held_out_frames():
    clips = build_clips(load_config(CONFIG, TINY).data, 'val', clip_length=1, gap=1)
    return [clips[i].frames[0] for i in range(len(clips))]


@pytest.mark.slow
def test_onnx_export_of_a_trained_model_matches_pytorch(trained):
    import onnxruntime as ort
    model, fp32, _ = trained
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 128)).astype(np.float32)
    ref = Segmenter(model).logits(x)
    out = ort.InferenceSession(str(fp32), providers=['CPUExecutionProvider']).run(
        None, {'image': x})[0]
    assert out.shape == ref.shape == (2, read_metadata(model)['num_classes'], 64, 128)
    assert np.abs(out - ref).max() < 1e-4


def _ort_optimized_ops(onnx_path, out_path):
    """Op types of the graph ONNX Runtime's CPU provider runs (its fusions applied)."""
    import onnx
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(out_path)
    ort.InferenceSession(str(onnx_path), options, providers=['CPUExecutionProvider'])
    return [n.op_type for n in onnx.load(str(out_path)).graph.node]


@pytest.mark.slow
def test_int8_export_runs_every_convolution_quantized_in_onnxruntime(trained, tmp_path):
    import onnx
    _, fp32, int8 = trained
    convs = sum(n.op_type == 'Conv' for n in onnx.load(str(fp32)).graph.node)
    assert convs >= 40   # BatchNorm folded: one Conv per convolution of the network
    # In the QDQ file, each Conv reads a dequantized input and dequantized int8 weights.
    graph = onnx.load(str(int8)).graph
    made_by = {o: n for n in graph.node for o in n.output}
    for node in (n for n in graph.node if n.op_type == 'Conv'):
        assert all(made_by[i].op_type == 'DequantizeLinear' for i in node.input[:2]), node.name
    # What ONNX Runtime runs: each of them fused into an integer QLinearConv, its ReLU
    # absorbed (no float Conv, no Relu left).
    ops = _ort_optimized_ops(int8, tmp_path / 'int8.optimized.onnx')
    assert ops.count('QLinearConv') == convs
    assert 'Conv' not in ops and 'Relu' not in ops


@pytest.mark.slow
def test_int8_argmax_agrees_with_fp32_on_held_out_frames(trained):
    model, fp32, int8 = trained
    fp32_seg = Segmenter(fp32, backend='onnxruntime')
    int8_seg = Segmenter(int8, backend='onnxruntime')
    assert int8_seg.meta['quantization']['precision'] == 'int8'
    frames = _held_out_frames()
    masks = [fp32_seg.segment(f) for f in frames]
    assert np.mean([len(np.unique(m)) for m in masks]) >= 3   # not one class everywhere
    agree = np.mean([(int8_seg.segment(f) == m).mean() for f, m in zip(frames, masks)])
    assert agree >= MIN_INT8_AGREEMENT, agree
