"""Process-level set-up for training: device, distributed group, seeds, output directory."""

from dataclasses import dataclass
import logging
import os
import random

import numpy as np
from stkd_ros.errors import InputError
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise InputError(f'train.device is {name!r} but CUDA is not available here')
    return torch.device(name)


def setup_runtime(device: str) -> Runtime:
    """Join the process group when launched by torchrun (RANK / WORLD_SIZE set)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = 'nccl' if dev.type == 'cuda' else 'gloo'
        if dev.type == 'cuda':
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        log.info('rank %d of %d joined (%s)', dist.get_rank(), world, backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Runtime(dev, rank, world)


def teardown_runtime(rt: Runtime):
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
