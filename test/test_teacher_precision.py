"""The teacher's forward in bfloat16 where it labels: same outputs' type, labels kept, recorded."""

import json

from cli_helpers import CONFIG, TINY
import numpy as np
import pytest
from stkd_ros.config import ConfigError, DistillConfig, DistillWeights, load_config
from stkd_ros.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from stkd_ros.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from stkd_ros.errors import InputError
from stkd_ros.inference import model_input
from stkd_ros.labeling.identity import CARRIED_TRUTH, GROUND_TRUTH
from stkd_ros.labeling.labeler import hard_labels
from stkd_ros.labeling.passes import TeacherPasses
from stkd_ros.labeling.store import new_manifest, prepare_store, StoreError
from stkd_ros.model_file import read_metadata, save_model_file
from stkd_ros.models import build_model
from stkd_ros.teacher_precision import native_bf16, resolve_precision, teacher_forward
from stkd_ros.training.commands import distill
from stkd_ros.training.distill_task import DistillationTask
import torch
import torch.nn.functional as nnf
import yaml

#: Share of pixels whose class the bf16 forward must keep (random weights: the closest calls).
AGREEMENT = 0.97


@pytest.fixture(scope='module')
def teacher():
    torch.manual_seed(0)
    return build_model('teacher', 11, size='tiny').eval()


def _frames(n=2, h=64, w=128, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 3, h, w))).float()


def test_auto_is_bf16_where_the_device_has_it_and_the_choice_is_checked():
    assert resolve_precision('auto', 'cpu') == ('bf16' if native_bf16('cpu') else 'fp32')
    assert resolve_precision('fp32', 'cpu') == 'fp32'
    assert resolve_precision('bf16', 'cpu') == 'bf16'
    assert not native_bf16('meta')
    assert load_config(None).teacher.precision == 'auto'
    with pytest.raises(ConfigError, match=r'^config: teacher.precision: unknown precision '
                                          r"'fp16'; expected one of auto, fp32, bf16$"):
        load_config(None, ['teacher.precision=fp16'])


def test_fp32_is_the_plain_forward_even_under_an_autocast(teacher):
    x = _frames()
    with torch.no_grad():
        plain = teacher(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):   # as a student's amp would be
            fp32 = teacher_forward(teacher, x, 'fp32')
    assert plain.keys() == fp32.keys()
    for key in plain:
        assert torch.equal(plain[key], fp32[key]), key


def test_bf16_hands_on_float32_that_keeps_the_classes(teacher):
    x = _frames()
    seen = []
    hook = teacher.cnn.backbone.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.no_grad():
        plain = teacher(x)
        bf16 = teacher_forward(teacher, x, 'bf16')
    hook.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert all(v.dtype == torch.float32 for v in bf16.values())
    agree = (bf16['logits'].argmax(1) == plain['logits'].argmax(1)).float().mean()
    assert agree >= AGREEMENT
    assert not torch.equal(bf16['logits'], plain['logits'])
    with pytest.raises(ValueError, match='resolve it first'):
        teacher_forward(teacher, x, 'auto')


def _old_probabilities(model, meta, frame, scales, flip):
    """Compute the label path as it was before: one frame, a plain fp32 forward."""
    h, w = meta['input_size']
    total = 0
    for s in scales:
        x = torch.from_numpy(model_input(frame[None], (round(h * s), round(w * s)),
                                         meta['mean'], meta['std']))
        if flip:
            x = torch.cat([x, x.flip(-1)])
        with torch.no_grad():
            probs = model(x)['logits'].float().softmax(1)
        if flip:
            probs = torch.stack([probs[0], probs[1].flip(-1)])
        probs = nnf.interpolate(probs, size=frame.shape[:2], mode='bilinear',
                                align_corners=False)
        total = total + probs.sum(0)
    return total / (len(scales) * (2 if flip else 1))


META = {'input_size': [64, 128], 'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)}


@pytest.mark.parametrize('flip', [False, True])
def test_the_labelers_fp32_is_the_old_path_and_bf16_keeps_its_labels(teacher, flip):
    frame = np.random.default_rng(2).integers(0, 256, (80, 160, 3), np.uint8)
    scales = [1.0, 1.5]
    old = _old_probabilities(teacher, META, frame, scales, flip)
    fp32 = TeacherPasses(teacher, META, scales=scales, flip=flip, precision='fp32')
    assert fp32.precision == 'fp32'
    assert torch.equal(fp32.probabilities(frame), old)
    bf16 = TeacherPasses(teacher, META, scales=scales, flip=flip, precision='bf16')
    probs = bf16.probabilities(frame)
    assert bf16.precision == 'bf16' and probs.dtype == torch.float32
    classes, _ = hard_labels(probs)
    assert (classes == hard_labels(old)[0]).mean() >= AGREEMENT


def test_a_distilled_step_reads_float32_targets_from_either_precision(teacher):
    torch.manual_seed(0)
    student = build_model('bisenet_lite', 11)
    cfg = DistillConfig(weights=DistillWeights(pixel=1.0, pairwise=1.0))
    batch = {'frames': _frames(4).view(2, 2, 3, 64, 128),
             'labels': torch.full((2, 2, 64, 128), 255)}
    tasks = {p: DistillationTask(student, teacher, 11, cfg, teacher_precision=p)
             for p in ('fp32', 'bf16')}
    with torch.no_grad():
        losses = {p: task(batch) for p, task in tasks.items()}
        both = torch.cat(batch['frames'].unbind(1))
        s, t = student(both), teacher(both)
    # fp32: exactly the old step's terms (the teacher called as before).
    from stkd_ros.losses.pixel import pixel_kd
    assert torch.equal(losses['fp32']['kd_pixel'], pixel_kd(s['logits'], t['logits'], 1.0))
    for name in ('kd_pixel', 'kd_pairwise', 'pseudo_label'):
        assert losses['bf16'][name].dtype == torch.float32
        assert losses['bf16'][name] == pytest.approx(float(losses['fp32'][name]), rel=0.05)


def test_a_store_records_its_precision_and_resumes_only_at_it(tmp_path):
    def manifest(precision, batch=8):
        return new_manifest(teacher_sha256='ab' * 32, teacher_path='t', classes=['a'],
                            source='s', settings={'scales': [1.0], 'batch': batch}, oracle=False,
                            sequences=[], teacher_precision=precision)

    prepare_store(tmp_path, manifest('bf16'))
    assert json.loads((tmp_path / 'manifest.json').read_text())['teacher_precision'] == 'bf16'
    prepare_store(tmp_path, manifest('bf16', batch=1))      # how fast, not what: resumes
    with pytest.raises(StoreError, match=r'another teacher precision \(teacher.precision\) '
                                         r'\(bf16 there, fp32 here\)'):
        prepare_store(tmp_path, manifest('fp32'))
    # A store made before the precision was recorded ran fp32.
    old = tmp_path / 'old'
    prepare_store(old, manifest('fp32'))
    recorded = json.loads((old / 'manifest.json').read_text())
    del recorded['teacher_precision'], recorded['settings']['batch']
    (old / 'manifest.json').write_text(json.dumps(recorded))
    assert prepare_store(old, manifest('fp32'))['teacher_precision'] == 'fp32'
    with pytest.raises(StoreError, match='bf16 here'):
        prepare_store(old, manifest('bf16'))
    # One without a teacher (the ground truth, the carried truth) had none.
    for name in (GROUND_TRUTH, CARRIED_TRUTH):
        truth = {**manifest(None), 'teacher_sha256': name}
        prepare_store(tmp_path / name, truth)
        recorded = json.loads((tmp_path / name / 'manifest.json').read_text())
        del recorded['teacher_precision']
        (tmp_path / name / 'manifest.json').write_text(json.dumps(recorded))
        assert prepare_store(tmp_path / name, truth)['teacher_precision'] is None


def _teacher_file(path, teacher):
    save_model_file(path, teacher, {
        'arch': 'teacher', 'arch_args': {'size': 'tiny'}, 'num_classes': 11,
        'classes': list(CAMVID_CLASSES), 'palette': CAMVID_PALETTE[:11].tolist(),
        'input_size': [64, 128], 'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD)})
    return path


def test_stkd_distill_records_the_precision_it_ran_at(tmp_path, teacher):
    path = _teacher_file(tmp_path / 'teacher.safetensors', teacher)
    distill(CONFIG, path, tmp_path / 'd', steps=1, overrides=TINY + ['train.eval_every=1'])
    used = 'bf16' if native_bf16('cpu') else 'fp32'
    config = yaml.safe_load((tmp_path / 'd' / 'config.yaml').read_text())
    assert config['teacher']['precision'] == used
    provenance = read_metadata(tmp_path / 'd' / 'model.safetensors')['provenance']
    assert provenance['config']['teacher']['precision'] == used


def test_a_resumed_distill_run_keeps_the_precision_it_started_at(tmp_path, teacher):
    # Started where auto meant the other precision (another machine): resumed with auto, it
    # goes on at the run's; asked for this machine's one by name, it stops.
    path = _teacher_file(tmp_path / 'teacher.safetensors', teacher)
    here = 'bf16' if native_bf16('cpu') else 'fp32'
    there = {'bf16': 'fp32', 'fp32': 'bf16'}[here]
    out = tmp_path / 'd'
    distill(CONFIG, path, out, steps=1, overrides=TINY + [f'teacher.precision={there}'])
    distill(CONFIG, path, out, steps=1, overrides=TINY + ['teacher.precision=auto'])
    assert yaml.safe_load((out / 'config.yaml').read_text())['teacher']['precision'] == there
    assert read_metadata(out / 'model.safetensors')['provenance']['config']['teacher'][
        'precision'] == there
    with pytest.raises(InputError, match=f'distilled with the teacher in {there}.*'
                                         f'teacher.precision {here}') as caught:
        distill(CONFIG, path, out, steps=1, overrides=TINY + [f'teacher.precision={here}'])
    assert '\n' not in str(caught.value)
    assert yaml.safe_load((out / 'config.yaml').read_text())['teacher']['precision'] == there
