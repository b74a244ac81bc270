"""Replay a bag through segment_node and flicker_monitor as real ROS 2 processes."""

import csv
import os
from pathlib import Path
import random
import subprocess
import sys
import time

from stkd_ros.bag.reader import connections_for, open_bag
from stkd_ros.nodes import replay_settings

PROFILE = Path(__file__).resolve().parents[2] / 'config' / 'fastdds_profile.xml'
#: Domain IDs that are safe on Linux (ROS 2 "The ROS_DOMAIN_ID": 102 and up may collide with
#: the ephemeral ports), less 0, the default domain where a user's own nodes are.
PRIVATE_DOMAINS = range(1, 102)
#: After the bag, at most this long for the last masks to be segmented and measured.
SETTLE_TIMEOUT_S = 120.0


def private_domain_id() -> int:
    """Return a domain from PRIVATE_DOMAINS other than this environment's ROS_DOMAIN_ID."""
    own = os.environ.get('ROS_DOMAIN_ID', '0')
    return random.choice([d for d in PRIVATE_DOMAINS if str(d) != own])


def _node(module, params: dict, *ros_args, env):
    values = [a for k, v in params.items() for a in ('-p', f'{k}:={v}')]
    return subprocess.Popen([sys.executable, '-m', f'stkd_ros.nodes.{module}', '--ros-args',
                             *values, *ros_args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def replay(bag, model, topic: str, log_dir, timeout: float = 300.0,
           temporal_fusion: bool = False) -> dict:
    """
    Play ``bag``'s ``topic`` into segment_node + flicker_monitor; live flicker figures.

    The nodes queue every frame as replay.launch.py has them do, so every frame of the bag
    gets a mask and every pair a flicker step. The nodes run in a domain of their own; once
    the bag is played, the replay ends when flicker_monitor reports a step for every pair of
    frames on /diagnostics (or when a node exits, or after ``SETTLE_TIMEOUT_S``).
    ``temporal_fusion``: segment_node's parameter (its default settings), as replay.launch.py's
    argument of that name sets it.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    csv_path = log_dir / 'flicker_live.csv'
    with open_bag(bag) as reader:
        frames = sum(c.msgcount for c in connections_for(reader, [topic]))
    domain = private_domain_id()
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'PYTHONUNBUFFERED': '1'}
    if PROFILE.is_file():
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    remap = ['-r', f'image:={topic}']
    segment = _node('segment_node', {'model_path': model, 'publish_color': 'false',
                                     'publish_overlay': 'false',
                                     'temporal_fusion': str(temporal_fusion).lower(),
                                     **replay_settings.SEGMENT_NODE}, *remap, env=env)
    monitor = _node('flicker_node', {'log_path': csv_path, **replay_settings.FLICKER_MONITOR},
                    *remap, env=env)
    player = _node('bag_player_node', {'bag': bag, 'topics': f'[{topic}]',
                                       'wait_for_subscribers': replay_settings.PLAYER_WAITS_FOR},
                   env=env)
    try:
        player.wait(timeout=timeout)
        _wait_for_steps(domain, frames - 1, (segment, monitor))
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
            'tc': float(last['tc_total']), 'log_dir': str(log_dir), 'domain_id': domain}


def _wait_for_steps(domain: int, steps: int, nodes):
    """Wait until flicker_monitor's /diagnostics count ``steps``, or a node has exited."""
    from diagnostic_msgs.msg import DiagnosticArray
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions
    counted = []

    def on_diagnostics(msg):
        counted.extend(int(kv.value) for s in msg.status if s.name.startswith('flicker_monitor: ')
                       for kv in s.values if kv.key == 'steps')

    context = rclpy.Context()
    # No signal handlers: Ctrl-C stays the calling command's (it stops the replay).
    rclpy.init(context=context, domain_id=domain,
               signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node('stkd_replay', context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
        executor.add_node(node)
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while (not (counted and counted[-1] >= steps) and time.monotonic() < deadline
               and all(proc.poll() is None for proc in nodes)):
            executor.spin_once(timeout_sec=0.1)
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
