"""
The deployable model file: one ``.safetensors`` with the weights and a JSON metadata entry.

The metadata holds everything needed to rebuild and run the model: architecture and its
arguments, classes, palette, input size, normalization, dataset and provenance. Loading
parses only the safetensors header and tensors; nothing is ever unpickled. This module is
the PyTorch side (save a module, rebuild it); the metadata and its reading, which need no
PyTorch, are ``stkd_ros.model_meta``'s, and are importable from here too.
"""

import json
from pathlib import Path

from safetensors.torch import load_model, save_model
from stkd_ros.errors import InputError
from stkd_ros.model_meta import FORMAT, KEY, ModelFileError, read_metadata, REQUIRED
from torch import nn

__all__ = ['load_model_file', 'ModelFileError', 'read_metadata', 'save_model_file']


def save_model_file(path, model: nn.Module, metadata: dict):
    meta = {'format': FORMAT, **metadata}
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise InputError(f'model file metadata lacks {missing}')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + '.tmp')
    save_model(model, str(tmp), metadata={KEY: json.dumps(meta)})
    tmp.replace(path)


def load_model_file(path, device='cpu'):
    """Rebuild the model of a model file and load its weights; returns (model, metadata)."""
    from stkd_ros.models import build_model
    meta = read_metadata(path)
    model = build_model(meta['arch'], meta['num_classes'], **meta['arch_args'])
    try:
        load_model(model, str(path), strict=True)
    except Exception as exc:
        raise ModelFileError(f'{path}: cannot load weights for {meta["arch"]} (truncated or '
                             f'mismatched file): '
                             f'{str(exc).splitlines()[0]}') from None
    # load_model copies into the parameters the model was built with, on the CPU: move them.
    return model.to(device).eval(), meta
