"""Replay a bag through segment_node and flicker_monitor as real ROS 2 processes."""

import csv
import os
from pathlib import Path
import random
import subprocess
import sys
import time

from stkd_ros.nodes import replay_settings

PROFILE = Path(__file__).resolve().parents[2] / 'config' / 'fastdds_profile.xml'


def _node(module, params: dict, *ros_args, env):
    values = [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    return subprocess.Popen([sys.executable, '-m', f'stkd_ros.nodes.{module}', '--ros-args',
                             *values, *ros_args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def replay(bag, model, topic: str, log_dir, timeout: float = 300.0) -> dict:
    """
    Play ``bag``'s ``topic`` into segment_node + flicker_monitor; live flicker figures.

    The nodes queue every frame as replay.launch.py has them do, so every frame of the bag
    gets a mask and every pair a flicker step.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    csv_path = log_dir / 'flicker_live.csv'
    env = {**os.environ, 'ROS_DOMAIN_ID': str(random.randint(100, 200)),
           'PYTHONUNBUFFERED': '1'}
    if PROFILE.is_file():
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    remap = ['-r', f'image:={topic}']
    segment = _node('segment_node', {'model_path': model, 'publish_color': 'false',
                                     'publish_overlay': 'false',
                                     **replay_settings.SEGMENT_NODE}, *remap, env=env)
    monitor = _node('flicker_node', {'log_path': csv_path, **replay_settings.FLICKER_MONITOR},
                    *remap, env=env)
    player = _node('bag_player_node', {'bag': bag, 'topics': f'[{topic}]',
                                       'wait_for_subscribers': replay_settings.PLAYER_WAITS_FOR},
                   env=env)
    try:
        player.wait(timeout=timeout)
        time.sleep(2.0)   # the last masks reach the monitor
    finally:
        logs = {}
        for name, proc in (('bag_player', player), ('segment_node', segment),
                           ('flicker_monitor', monitor)):
            if proc.poll() is None:
                proc.terminate()
            try:
                logs[name] = proc.communicate(timeout=15)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                logs[name] = proc.communicate()[0]
            (log_dir / f'{name}.log').write_text(logs[name] or '')
    rows = []
    if csv_path.is_file():
        with open(csv_path, newline='') as f:
            rows = list(csv.DictReader(f))
    # The running totals of the last step: what eval-bag reports for the same drive.
    last = rows[-1] if rows else {'flicker_total': 'nan', 'tc_total': 'nan'}
    return {'steps': len(rows), 'flicker': float(last['flicker_total']),
            'tc': float(last['tc_total']), 'log_dir': str(log_dir)}
