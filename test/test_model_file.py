"""The model file: round trip, and rejection of everything that is not one, unpickling nothing."""

import pickle

import numpy as np
import pytest
from safetensors.torch import save_file
from stkd_ros.model_file import load_model_file, ModelFileError, read_metadata, save_model_file
from stkd_ros.models import build_model
import torch

META = {'arch': 'bisenet_lite', 'arch_args': {}, 'num_classes': 5, 'classes': list('abcde'),
        'palette': [[i, i, i] for i in range(5)], 'input_size': [64, 128],
        'mean': [0.5] * 3, 'std': [0.25] * 3, 'dataset': 'synthetic', 'provenance': {}}


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    model = build_model('bisenet_lite', 5).eval()
    path = tmp_path / 'model.safetensors'
    save_model_file(path, model, META)
    return path, model


def test_round_trip_gives_the_same_outputs(model_file):
    path, model = model_file
    loaded, meta = load_model_file(path)
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)['logits'], model(x)['logits'])
    assert meta['classes'] == list('abcde') and meta['format'] == 'stkd_ros.model/1'


def test_the_model_comes_back_on_the_device_asked_for(model_file):
    # 'meta' stands in for an accelerator where CI has none: a real torch device all the same.
    loaded, _ = load_model_file(model_file[0], torch.device('meta'))
    assert {t.device.type for t in [*loaded.parameters(), *loaded.buffers()]} == {'meta'}


class _Trap:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), 'w'))


def test_a_pickle_is_rejected_without_being_unpickled(tmp_path):
    marker = tmp_path / 'unpickled'
    bad = tmp_path / 'model.safetensors'
    bad.write_bytes(pickle.dumps({'weights': _Trap(marker)}))
    with pytest.raises(ModelFileError, match='not a stkd model file'):
        load_model_file(bad)
    assert not marker.exists()
    torch.save({'w': torch.zeros(2), 'trap': _Trap(marker)}, tmp_path / 'torch.pt')
    with pytest.raises(ModelFileError):
        read_metadata(tmp_path / 'torch.pt')
    assert not marker.exists()


def test_truncated_and_foreign_files_are_rejected(model_file, tmp_path):
    path, _ = model_file
    data = path.read_bytes()
    for cut in (len(data) // 2, 100, 4):
        short = tmp_path / f'cut{cut}.safetensors'
        short.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load_model_file(short)
    other = tmp_path / 'other.safetensors'
    save_file({'w': torch.zeros(3)}, str(other))
    with pytest.raises(ModelFileError, match='no "stkd" metadata'):
        load_model_file(other)
    with pytest.raises(FileNotFoundError, match='nothing.safetensors'):
        load_model_file(tmp_path / 'nothing.safetensors')


def test_metadata_must_be_complete(tmp_path):
    with pytest.raises(ValueError, match='lacks'):
        save_model_file(tmp_path / 'm.safetensors', build_model('bisenet_lite', 5),
                        {'arch': 'bisenet_lite'})
    assert np.array(META['palette']).shape == (5, 3)
