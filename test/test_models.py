"""Students and teacher: outputs, gradients, local pretrained weights."""

import pytest
from stkd_ros.models import build_model
from stkd_ros.models.registry import STUDENTS
import timm
import torch


@pytest.mark.parametrize('name', STUDENTS)
def test_students_return_logits_at_input_size_and_features(name):
    torch.manual_seed(0)
    model = build_model(name, 11)
    out = model(torch.randn(2, 3, 64, 128))
    assert out['logits'].shape == (2, 11, 64, 128)
    assert out['features'].dim() == 4 and out['features'].shape[0] == 2
    out['logits'].mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_teacher_exposes_both_branches():
    model = build_model('teacher', 7, size='tiny')
    out = model(torch.randn(2, 3, 64, 128))
    for key in ('logits', 'cnn_logits', 'transformer_logits'):
        assert out[key].shape == (2, 7, 64, 128)
    for key in ('features', 'cnn_features', 'transformer_features'):
        assert out[key].shape[:2] == (2, 64)
    assert not torch.equal(out['cnn_logits'], out['transformer_logits'])


def test_unknown_model_and_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match='unknown model'):
        build_model('segformer9000', 11)
    with pytest.raises(ValueError, match='bad arguments'):
        build_model('bisenet_lite', 11, wings=2)
    with pytest.raises(ValueError, match='unknown teacher size'):
        build_model('teacher', 11, size='huge')


def test_pretrained_backbone_loads_from_a_local_file_only(tmp_path):
    torch.manual_seed(1)
    reference = timm.create_model('resnet18', pretrained=False)
    path = tmp_path / 'resnet18.pth'
    torch.save(reference.state_dict(), path)
    model = build_model('pspnet_resnet18', 11, pretrained=str(path))
    torch.testing.assert_close(model.backbone.conv1.weight, reference.conv1.weight)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_model('pspnet_resnet18', 11, pretrained=str(tmp_path / 'missing.pth'))
    torch.save({'nothing.weight': torch.zeros(3)}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='matches the backbone'):
        build_model('pspnet_resnet18', 11, pretrained=str(tmp_path / 'other.pth'))


def test_matrix_adaptive_pooling_equals_torch():
    from stkd_ros.models.pspnet import adaptive_avg_pool
    x = torch.randn(2, 3, 8, 13)
    for bins in (1, 2, 3, 6):
        torch.testing.assert_close(adaptive_avg_pool(x, bins),
                                   torch.nn.functional.adaptive_avg_pool2d(x, bins))
