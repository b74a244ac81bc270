"""Shared by the node benchmarks: the DDS environment, the node, the frames, the model file."""

from contextlib import contextmanager
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
from random_model import random_model_file
import rclpy
from stkd_ros.commands.replay import private_domain_id
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld

ROOT = Path(__file__).resolve().parents[1]


def use_private_domain():
    """Put this process, and the nodes it starts, on a private DDS domain with our profile."""
    os.environ.update({'ROS_DOMAIN_ID': str(private_domain_id()),
                       'FASTDDS_DEFAULT_PROFILES_FILE': str(ROOT / 'config' /
                                                            'fastdds_profile.xml')})


def start_segment_node(model, threads: int, workers: int, device: str, *ros_args):
    """Start segment_node under /bench, masks only, with ``ros_args`` added; output dropped."""
    params = {'model_path': model, 'threads': threads, 'workers': workers, 'device': device,
              'publish_color': 'false', 'publish_overlay': 'false'}
    args = [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    return subprocess.Popen([sys.executable, '-m', 'stkd_ros.nodes.segment_node', '--ros-args',
                             *args, '-r', '__ns:=/bench', *ros_args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) of process ``pid`` in MiB; NaN once it has ended."""
    try:
        lines = Path(f'/proc/{pid}/status').read_text().splitlines()
    except FileNotFoundError:
        return float('nan')
    for line in lines:
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def camera_frames(count: int = 8, size=(360, 480)) -> list:
    """RGB frames (HxW ``size``) of one synthetic street, as a camera would send them."""
    world = SyntheticWorld(SyntheticConfig(height=size[0], width=size[1], frames=count, seed=3))
    return [world.frame(0, t)[0] for t in range(count)]


def model_file(path, tmp_dir, size=(128, 256)):
    """``path``, or a random-weight LR-ASPP at ``size`` written into ``tmp_dir``."""
    return path or random_model_file(Path(tmp_dir) / 'lraspp.safetensors', size=size)


def percentiles_ms(values) -> dict:
    """p50 and p95 of ``values`` (NaN when there are none)."""
    if not len(values):
        return {'p50_ms': float('nan'), 'p95_ms': float('nan')}
    p50, p95 = np.percentile(values, [50, 95])
    return {'p50_ms': float(p50), 'p95_ms': float(p95)}


@contextmanager
def bench_node(name: str):
    """Start rclpy and the benchmark's own node; shut both down however the block ends."""
    rclpy.init()
    node = rclpy.create_node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()
