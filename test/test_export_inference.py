"""ONNX export matches PyTorch on each backend; the Segmenter maps frames as evaluation does."""

import numpy as np
import pytest
from stkd_ros.commands.export import export_onnx, write_metadata
from stkd_ros.data.clip import Clip
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.data.transforms import train_transforms
from stkd_ros.inference import resize_classes, Segmenter
from stkd_ros.model_file import load_model_file, save_model_file
from stkd_ros.model_meta import ModelFileError, read_metadata
from stkd_ros.models import build_model
from stkd_ros.models.registry import STUDENTS
from stkd_ros.temporal_fusion import TemporalFusion
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


@pytest.mark.slow
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


def test_masks_are_the_argmax_resized_by_nearest_neighbour(tmp_path):
    seg = Segmenter(_model_file(tmp_path, 'bisenet_lite'))
    frame = np.random.default_rng(3).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    classes = seg.logits(seg.preprocess(frame))[0].argmax(0)
    np.testing.assert_array_equal(seg.segment(frame), classes)
    big = resize_classes(classes.astype(np.uint8), (128, 256))
    assert big.dtype == np.uint8 and big.shape == (128, 256)
    np.testing.assert_array_equal(big[::2, ::2], classes)          # no class id is mixed
    assert set(np.unique(resize_classes(classes.astype(np.uint8), (37, 91)))) <= set(
        np.unique(classes))


def test_segmenter_preprocesses_as_training_does(tmp_path):
    seg = Segmenter(_model_file(tmp_path, 'bisenet_lite'))
    # A 48x96 frame that training's random scale draws at 4/3 to the model's 64x128, no flip.
    frames = np.random.default_rng(2).integers(0, 255, (1, 48, 96, 3), dtype=np.uint8)
    clip = Clip(frames, np.zeros(frames.shape[:3], np.uint8), None)
    trained_on = train_transforms(crop_size=seg.input_size, scale_range=(4 / 3, 4 / 3),
                                  flip=False, mean=seg.meta['mean'],
                                  std=seg.meta['std'])(clip)['frames']
    np.testing.assert_array_equal(seg.preprocess(frames[0]), trained_on.numpy())


@pytest.mark.parametrize('size', [(64, 128), (150, 260), (40, 100)])
def test_node_masks_equal_the_masks_training_validation_scores(tmp_path, size):
    """A file's Segmenter gives what a node publishes (test_nodes.py); a module's, validation."""
    path = _model_file(tmp_path, 'bisenet_lite')
    seg = Segmenter(path)
    model, meta = load_model_file(path, torch.device('cpu'))
    validation = Segmenter.from_module(model.eval(), meta)
    world = SyntheticWorld(SyntheticConfig(height=size[0], width=size[1], frames=2, seed=4))
    for frame in world.clip(0, start=0, length=2).frames:
        published = seg.segment(frame)
        assert len(np.unique(published)) > 1
        np.testing.assert_array_equal(published, validation.segment(frame))


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_a_batch_of_cameras_gives_each_frame_its_own_mask(tmp_path, backend):
    """segment_batch: frames of different sizes in one pass, each mask as segment gives it."""
    path = _model_file(tmp_path, 'bisenet_lite')
    if backend == 'onnxruntime':
        export_onnx(path, tmp_path / 'm.onnx')
    seg = Segmenter(path, backend=backend, onnx_path=tmp_path / 'm.onnx'
                    if backend == 'onnxruntime' else None)
    frames = [SyntheticWorld(SyntheticConfig(height=h, width=w, frames=2, seed=i)).frame(0, 0)[0]
              for i, (h, w) in enumerate([(64, 128), (150, 260), (40, 100), (64, 128)])]
    masks = seg.segment_batch(frames)
    assert [m.shape for m in masks] == [f.shape[:2] for f in frames]
    for frame, mask in zip(frames, masks):
        assert mask.dtype == np.uint8 and mask.max() < 5 and len(np.unique(mask)) > 1
        # A batch may take another convolution algorithm than one frame: floating-point
        # rounding may flip a pixel whose two best classes tie.
        assert (mask == seg.segment(frame)).mean() > 0.999


@pytest.mark.parametrize('backend', ['torch', 'onnxruntime'])
def test_temporal_fusion_is_off_unless_a_stream_state_is_passed(tmp_path, backend):
    """Off, the masks are today's per-frame masks bit for bit; on, each camera has its state."""
    path = _model_file(tmp_path, 'bisenet_lite')
    onnx = export_onnx(path, tmp_path / 'm.onnx') if backend == 'onnxruntime' else None
    seg = Segmenter(path, backend=backend, onnx_path=onnx)
    clip = SyntheticWorld(SyntheticConfig(height=96, width=160, frames=4, seed=2)).clip(0)
    x = seg.preprocess(clip.frames[0])
    probs = seg.probabilities(x)
    assert probs.shape == (1, 5, 64, 128) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(1), seg.argmax(x))
    cameras = [TemporalFusion(), TemporalFusion()]
    alone, both, changed = TemporalFusion(), TemporalFusion(), False
    for t, frame in enumerate(clip.frames):
        per_frame = seg.segment(frame)
        np.testing.assert_array_equal(
            per_frame, resize_classes(seg.argmax(seg.preprocess(frame))[0], frame.shape[:2]))
        np.testing.assert_array_equal(seg.segment_batch([frame])[0], per_frame)
        fused = seg.segment(frame, fusion=alone, stamp=t / 30)
        assert fused.shape == frame.shape[:2] and fused.dtype == np.uint8
        if t == 0:      # a stream's first frame is the frame's own prediction
            np.testing.assert_array_equal(fused, per_frame)
        # Two cameras seeing the same frames: each state its own, like the stream alone.
        batch = seg.segment_batch([frame, frame], cameras, [t / 30] * 2)
        for mask in batch:
            assert (mask == fused).mean() > 0.999
        # eval-bag's call: both masks of one forward pass, each bit for bit what the node's
        # path gives (the per-frame one segment's with fusion off, the fused one a stream's).
        (own, both_fused), = seg.per_frame_and_fused_masks([frame], [both], [t / 30])
        np.testing.assert_array_equal(own, per_frame)
        np.testing.assert_array_equal(both_fused, fused)
        changed |= bool((fused != per_frame).any())
    assert changed, 'the fusion changed no pixel: the test could not tell the masks apart'
    (only, none), = seg.per_frame_and_fused_masks([frame])
    np.testing.assert_array_equal(only, per_frame)
    assert none is None
    (skipped, _), = seg.per_frame_and_fused_masks([frame], [TemporalFusion()], per_frame=False)
    assert skipped is None


@pytest.mark.parametrize('precision', ['f32', 'bf16'])
def test_openvino_masks_agree_with_pytorch_at_its_precision(tmp_path, precision):
    """The FP32 export runs on OpenVINO at the precision asked; its masks are PyTorch's."""
    from stkd_ros.backends.openvino_model import cpu_has_bf16, OpenVINOModel
    import openvino as ov
    if precision == 'bf16' and not cpu_has_bf16(ov.Core()):
        pytest.skip('this CPU has no bfloat16')
    path = _model_file(tmp_path, 'bisenet_lite')
    onnx_path = export_onnx(path, tmp_path / 'm.onnx')
    torch_seg = Segmenter(path)
    seg = Segmenter(path, backend='openvino', onnx_path=onnx_path, threads=1,
                    precision=precision)
    assert seg.meta == read_metadata(path) and seg.precision == precision
    net, _ = OpenVINOModel.load(onnx_path, threads=1, precision=precision)
    assert net.compiled.get_property('INFERENCE_NUM_THREADS') == 1
    assert set(net.layer_precisions()) == {precision}   # every convolution
    frames = SyntheticWorld(SyntheticConfig(height=150, width=260, frames=4, seed=5)).clip(0)
    x = np.concatenate([torch_seg.preprocess(f) for f in frames.frames])
    gap = np.abs(seg.logits(x) - torch_seg.logits(x)).max()
    # float32 is PyTorch's arithmetic in another order; bfloat16 keeps 8 bits of mantissa.
    assert gap < 1e-4 if precision == 'f32' else 1e-4 < gap < 0.05
    share = {'f32': 0.999, 'bf16': 0.98}[precision]
    for frame in frames.frames:
        mask = torch_seg.segment(frame)
        assert len(np.unique(mask)) > 1
        assert (seg.segment(frame) == mask).mean() >= share
    assert [m.shape for m in seg.segment_batch(frames.frames[:2])] == [(150, 260)] * 2


def test_onnx_backends_read_and_refuse_the_metadata_alike(tmp_path):
    """ONNX Runtime and OpenVINO share the check of the export's metadata."""
    path = _model_file(tmp_path, 'bisenet_lite')
    onnx_path = export_onnx(path, tmp_path / 'm.onnx')
    metas = [Segmenter(onnx_path, backend=b).meta for b in ('onnxruntime', 'openvino')]
    assert metas == [read_metadata(path)] * 2
    write_metadata(onnx_path, {**metas[0], 'format': 'stkd_ros.model/0'})
    for backend in ('onnxruntime', 'openvino'):
        with pytest.raises(ModelFileError,
                           match=r"unsupported model file format 'stkd_ros\.model/0'"):
            Segmenter(onnx_path, backend=backend)
    junk = tmp_path / 'junk.onnx'
    junk.write_bytes(b'not a model')
    for backend in ('onnxruntime', 'openvino'):
        with pytest.raises(ModelFileError, match='junk.onnx is not a readable ONNX model: .'):
            Segmenter(junk, backend=backend)
    with pytest.raises(ValueError, match='precision is for openvino'):
        Segmenter(path, precision='f32')
    with pytest.raises(ValueError, match="precision must be one of \\('bf16', 'f32'\\)"):
        Segmenter(onnx_path, backend='openvino', precision='f16')
