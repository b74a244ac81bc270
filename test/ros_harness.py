"""Run nodes as real processes and talk to them over real DDS from the test process."""

import os
from pathlib import Path
import random
import subprocess
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROFILE = str(ROOT / 'config' / 'fastdds_profile.xml')


def ros_env() -> dict:
    """Return the environment: a private DDS domain, and the launch files' Fast DDS profile."""
    domain = os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(20, 99)))
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = PROFILE
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    return {**os.environ, 'ROS_DOMAIN_ID': domain, 'PYTHONUNBUFFERED': '1'}


def start_node(module: str, *ros_args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, '-m', f'stkd_ros.nodes.{module}', '--ros-args',
                             *ros_args], env=ros_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_node(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def spin_until(node, condition, timeout: float) -> bool:
    import rclpy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if condition():
            return True
    return False


def wait_for_readers(node, pubs, count: int, timeout: float) -> bool:
    """
    Wait until each publisher has ``count`` subscriptions.

    The count is the publisher's side of the match; each remote reader matches the publisher
    on its own, later, and drops what was sent before (as bag_player's start_delay). A test
    whose first message must arrive sends it until it is answered (:func:`until_answered`).
    """
    return spin_until(node, lambda: all(p.get_subscription_count() >= count for p in pubs),
                      timeout)


def until_answered(node, send, answered, timeout: float = 60.0, every: float = 2.0) -> bool:
    """
    Call ``send()`` until ``answered()``, spinning ``node``; False after ``timeout``.

    ``every`` only paces the resends (discovery may lose the first ones); the answer decides.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send()
        if spin_until(node, answered, min(every, deadline - time.monotonic())):
            return True
    return False


def subscription_reliability(node, topic: str, node_name: str) -> set:
    """Return the reliabilities ('reliable', 'best_effort') of ``node_name``'s subscriptions."""
    from rclpy.qos import ReliabilityPolicy
    return {'reliable' if info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
            else 'best_effort'
            for info in node.get_subscriptions_info_by_topic(topic)
            if info.node_name == node_name}


def image_msg(array: np.ndarray, stamp_ns: int, frame_id: str = 'camera',
              encoding: str = 'rgb8'):
    from sensor_msgs.msg import Image
    msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding,
                step=array.shape[1] * (array.shape[2] if array.ndim == 3 else 1),
                data=np.ascontiguousarray(array).tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    return msg


def qos(reliable: bool, depth: int = 10):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT)
