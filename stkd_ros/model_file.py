"""
The deployable model file: one ``.safetensors`` with the weights and a JSON metadata entry.

The metadata holds everything needed to rebuild and run the model: architecture and its
arguments, classes, palette, input size, normalization, dataset and provenance. Loading
parses only the safetensors header and tensors; nothing is ever unpickled.
"""

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_model, save_model
from stkd_ros.errors import InputError
from torch import nn

FORMAT = 'stkd_ros.model/1'
_KEY = 'stkd'
REQUIRED = ('format', 'arch', 'arch_args', 'num_classes', 'classes', 'palette', 'input_size',
            'mean', 'std')


class ModelFileError(InputError):
    """A file that is not a readable stkd model file."""


def save_model_file(path, model: nn.Module, metadata: dict):
    meta = {'format': FORMAT, **metadata}
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise InputError(f'model file metadata lacks {missing}')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + '.tmp')
    save_model(model, str(tmp), metadata={_KEY: json.dumps(meta)})
    tmp.replace(path)


def read_metadata(path) -> dict:
    """Read and check the metadata of a model file without building the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'model file not found: {path}')
    try:
        with safe_open(str(path), framework='pt') as f:
            raw = (f.metadata() or {}).get(_KEY)
    except Exception as exc:   # pickles, truncated files, random bytes
        raise ModelFileError(f'{path} is not a stkd model file: not a readable safetensors '
                             f'file ({str(exc).splitlines()[0]})') from None
    if raw is None:
        raise ModelFileError(f'{path} is a safetensors file but not a stkd model file (no '
                             f'"{_KEY}" metadata)')
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise ModelFileError(f'{path}: stkd metadata is not valid JSON') from None
    if meta.get('format') != FORMAT:
        raise ModelFileError(f'{path}: unsupported model file format {meta.get("format")!r}; '
                             f'this version reads {FORMAT!r}')
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ModelFileError(f'{path}: model file metadata lacks {missing}')
    return meta


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
