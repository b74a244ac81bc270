"""
The model file's metadata: its format, its required keys, and reading it without PyTorch.

A model file (``stkd_ros.model_file``) is one ``.safetensors`` with a JSON entry ``stkd``; an
ONNX export carries the same JSON as its custom metadata, checked by the same
``parse_metadata`` (``stkd_ros.backends.onnx_file``). Reading it parses only the safetensors
header: nothing is unpickled, and no PyTorch is imported, so a node on another backend can
name a bad file without loading torch.
"""

import json
from pathlib import Path

from safetensors import safe_open
from stkd_ros.errors import InputError

FORMAT = 'stkd_ros.model/1'
KEY = 'stkd'
REQUIRED = ('format', 'arch', 'arch_args', 'num_classes', 'classes', 'palette', 'input_size',
            'mean', 'std')


class ModelFileError(InputError):
    """A file that is not a readable stkd model file."""


def read_metadata(path) -> dict:
    """Read and check the metadata of a model file without building the model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'model file not found: {path}')
    try:
        # numpy: only the header is read, and PyTorch stays unloaded.
        with safe_open(str(path), framework='np') as f:
            raw = (f.metadata() or {}).get(KEY)
    except Exception as exc:   # pickles, truncated files, random bytes
        raise ModelFileError(f'{path} is not a stkd model file: not a readable safetensors '
                             f'file ({str(exc).splitlines()[0]})') from None
    if raw is None:
        raise ModelFileError(f'{path} is a safetensors file but not a stkd model file (no '
                             f'"{KEY}" metadata)')
    return parse_metadata(path, raw)


def parse_metadata(path, raw: str) -> dict:
    """Parse the JSON metadata ``raw`` read from ``path`` and check its format and keys."""
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
