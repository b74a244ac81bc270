"""INT8 export (ONNX Runtime static quantization), run by ONNX Runtime and OpenVINO."""

import json
import sys

from cli_helpers import CONFIG
import numpy as np
import pytest
from stkd_ros.cli import main
from stkd_ros.commands.export import export_onnx
from stkd_ros.commands.quantize import quantize_int8
from stkd_ros.inference import Segmenter
from stkd_ros.model_file import read_metadata, save_model_file
from stkd_ros.models import build_model
from stkd_ros.training.commands import evaluate_model, train_student

# A tiny world at 64x128 and a student trained on it briefly: enough to be far above chance,
# so the INT8-against-FP32 comparison means something.
TINY = ['data.crop_size=[64,128]', 'data.eval_size=[64,128]', 'data.scale_range=[0.8,1.2]',
        'data.synthetic.height=64', 'data.synthetic.width=128', 'data.synthetic.frames=8',
        'data.synthetic.train_clips=8', 'data.synthetic.val_clips=3',
        'data.synthetic.keys_per_clip=2', 'train.batch_size=4', 'train.workers=0',
        'train.warmup_steps=5', 'train.log_every=10', 'train.eval_every=1000',
        'train.checkpoint_every=1000', 'train.lr=0.005', 'student.arch=lraspp_mobilenetv3']
# mIoU points INT8 may lose against FP32 on this small held-out set (the target on a
# full held-out set is 1 point; 6 held-out frames are noisier).
MAX_LOSS = 0.02


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('tiny_student')
    train_student(CONFIG, out, 60, TINY)
    model = out / 'model.safetensors'
    fp32 = export_onnx(model, out / 'fp32.onnx')
    int8 = quantize_int8(model, out / 'int8.onnx', frames=16)
    return model, fp32, int8


@pytest.mark.slow
def test_int8_masks_have_the_frame_size_and_the_model_classes(trained):
    import onnx
    model, _, int8 = trained
    seg = Segmenter(model, backend='onnxruntime', onnx_path=int8)
    meta = read_metadata(model)
    assert {k: v for k, v in seg.meta.items() if k != 'quantization'} == meta
    q = seg.meta['quantization']
    assert q['precision'] == 'int8' and q['calibration']['frames'] == 16
    assert q['calibration']['dataset'] == 'synthetic'
    graph = onnx.load(str(int8)).graph
    assert sum(n.op_type == 'QuantizeLinear' for n in graph.node) > 10
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    rng = np.random.default_rng(0)
    for h, w in ((64, 128), (37, 91), (240, 320)):
        mask = seg.segment(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        assert mask.shape == (h, w) and mask.dtype == np.uint8
        assert mask.max() < meta['num_classes']


@pytest.mark.slow
def test_int8_miou_stays_within_the_stated_loss_of_fp32(trained, tmp_path):
    model, fp32, int8 = trained
    torch_r = evaluate_model(model, CONFIG, overrides=TINY)
    fp32_r = evaluate_model(fp32, CONFIG, overrides=TINY, backend='onnxruntime')
    assert torch_r['miou'] > 0.25   # trained: the comparison is not between two random models
    assert abs(fp32_r['miou'] - torch_r['miou']) < 1e-3   # same Segmenter path, same masks
    sets = [a for s in TINY for a in ('--set', s)]
    code = main(['evaluate', '--onnx', str(int8), '--config', CONFIG, '--json',
                 str(tmp_path / 'int8.json')] + sets)
    int8_r = json.loads((tmp_path / 'int8.json').read_text())
    assert code == 0 and int8_r['precision'] == 'int8' and int8_r['backend'] == 'onnxruntime'
    print(f'mIoU torch {torch_r["miou"]:.4f} fp32 ORT {fp32_r["miou"]:.4f} '
          f'int8 {int8_r["miou"]:.4f}; TC {fp32_r["tc"]:.4f} / {int8_r["tc"]:.4f}',
          file=sys.stderr)
    assert int8_r['miou'] >= fp32_r['miou'] - MAX_LOSS


@pytest.mark.slow
def test_openvino_runs_the_int8_and_bf16_exports_within_the_stated_loss(trained, tmp_path):
    """OpenVINO: the QDQ export's convolutions in INT8, its masks and mIoU near PyTorch's."""
    from stkd_ros.backends.openvino_model import OpenVINOModel
    model, fp32, int8 = trained
    net, meta = OpenVINOModel.load(int8)
    assert meta == Segmenter(int8, backend='onnxruntime').meta and 'quantization' in meta
    convolutions = net.layer_precisions()
    assert convolutions['u8'] > 0.9 * sum(convolutions.values()), convolutions
    torch_r = evaluate_model(model, CONFIG, overrides=TINY)
    sets = [a for s in TINY for a in ('--set', s)]
    runs = {}
    for name, file in (('fp32', fp32), ('int8', int8)):
        assert main(['evaluate', '--onnx', str(file), '--backend', 'openvino', '--config',
                     CONFIG, '--json', str(tmp_path / f'{name}.json')] + sets) == 0
        runs[name] = json.loads((tmp_path / f'{name}.json').read_text())
        assert runs[name]['backend'] == 'openvino'
    print(f'mIoU torch {torch_r["miou"]:.4f} OpenVINO {runs["fp32"]["inference_precision"]} '
          f'{runs["fp32"]["miou"]:.4f} int8 {runs["int8"]["miou"]:.4f}', file=sys.stderr)
    assert runs['int8']['precision'] == 'int8' and runs['fp32']['precision'] == 'float32'
    for r in runs.values():
        assert r['miou'] >= torch_r['miou'] - MAX_LOSS
    torch_seg = Segmenter(model)
    frames = np.random.default_rng(4).integers(0, 255, (3, 96, 160, 3), dtype=np.uint8)
    for file, share in ((fp32, 0.98), (int8, 0.9)):
        seg = Segmenter(file, backend='openvino')
        agree = np.mean([(seg.segment(f) == torch_seg.segment(f)).mean() for f in frames])
        assert agree >= share, (file, agree)


def test_evaluate_backend_bad_combinations_are_one_line(tmp_path, capsys, monkeypatch):
    model = _model_file(tmp_path)
    onnx = str(export_onnx(model, tmp_path / 'm.onnx'))
    base = ['evaluate', '--config', CONFIG]
    _one_line_error(capsys, base + ['--model', str(model), '--backend', 'openvino'],
                    'give it with --onnx')
    _one_line_error(capsys, base + ['--onnx', onnx, '--backend', 'torch'],
                    'give it with --model')
    _one_line_error(capsys, base + ['--onnx', onnx, '--precision', 'f32'],
                    '--precision is for --backend openvino, not onnxruntime')
    # Without the openvino package (as on a machine that installed only ONNX Runtime):
    monkeypatch.setitem(sys.modules, 'openvino', None)
    monkeypatch.delitem(sys.modules, 'stkd_ros.backends.openvino_model', raising=False)
    _one_line_error(capsys, base + ['--onnx', onnx, '--backend', 'openvino'],
                    'backend openvino needs the Python package openvino')


def _model_file(tmp_path, dataset='synthetic'):
    model = build_model('bisenet_lite', 3)
    path = tmp_path / f'{dataset}.safetensors'
    save_model_file(path, model, {
        'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 3, 'classes': ['a', 'b', 'c'],
        'palette': [[0, 0, 0], [1, 1, 1], [2, 2, 2]], 'input_size': [64, 128],
        'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225], 'dataset': dataset})
    return path


def _one_line_error(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'Traceback' not in err
    assert expected in err
    return err


def test_int8_bad_input_is_one_line(tmp_path, capsys):
    model = _model_file(tmp_path)
    out = str(tmp_path / 'q.onnx')
    _one_line_error(capsys, ['export', '--model', str(model), '--onnx', out, '--int8',
                             '--calibration', '0'], 'expected 1 or more frames, got 0')
    _one_line_error(capsys, ['export', '--model', str(tmp_path / 'missing.safetensors'),
                             '--onnx', out, '--int8'], 'model file not found')
    junk = tmp_path / 'junk.safetensors'
    junk.write_bytes(b'not a model')
    _one_line_error(capsys, ['export', '--model', str(junk), '--onnx', out, '--int8'],
                    'is not a stkd model file')
    _one_line_error(capsys, ['export', '--model', str(_model_file(tmp_path, 'camvid')),
                             '--onnx', out, '--int8'], 'give the camvid directory with '
                    '--data-root')
    _one_line_error(capsys, ['export', '--model', str(_model_file(tmp_path, 'cityscapes')),
                             '--onnx', out, '--int8', '--data-root', str(tmp_path / 'nope')],
                    'nope')
    _one_line_error(capsys, ['export', '--model', str(model), '--int8'], 'need --onnx FILE')
    _one_line_error(capsys, ['export', '--model', str(model), '--onnx', out,
                             '--calibration', '8'], 'add --int8')
    assert not (tmp_path / 'q.onnx').exists()


def test_evaluate_onnx_rejects_a_file_without_stkd_metadata(tmp_path, capsys):
    bare = tmp_path / 'bare.onnx'
    bare.write_bytes(b'garbage')
    _one_line_error(capsys, ['evaluate', '--onnx', str(bare), '--config', CONFIG],
                    'is not a readable ONNX model')
