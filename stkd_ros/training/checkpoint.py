"""Resumable training state, written atomically and read back without unpickling code."""

import os
from pathlib import Path
import random

import numpy as np
from stkd_ros.errors import InputError
import torch


def rng_state() -> dict:
    state = {'torch': torch.get_rng_state(), 'python': random.getstate(),
             'numpy': [np.asarray(v).tolist() if isinstance(v, np.ndarray) else v
                       for v in np.random.get_state()]}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state['torch'])
    random.setstate(tuple(tuple(v) if isinstance(v, list) else v for v in state['python']))
    kind, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_checkpoint(path, **state):
    """Write to a temporary file in the same directory, then rename: never a half file."""
    path = Path(path)
    tmp = path.with_name(path.name + '.tmp')
    torch.save(state, tmp)
    with open(tmp, 'rb') as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:   # a truncated or foreign file: say which and why
        raise InputError(f'cannot resume from {path}: {exc.__class__.__name__}: '
                         f'{str(exc).splitlines()[0]}') from None
