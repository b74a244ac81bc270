"""
Benchmark: segment_node end to end (publish -> mask received) beside the model's own latency.

The publisher sends 480x360 rgb8 frames at 1x and 3x the model's rate, with the node's
latest-frame slot (frame_buffer 1, the default) and with a depth-10 queue for comparison.
The send time travels in the header stamp; both ends read the same clock.
"""

import argparse
import os
from pathlib import Path
import random
import statistics
import subprocess
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from report import emit
from sensor_msgs.msg import Image
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld
from stkd_ros.inference import Segmenter

ROOT = Path(__file__).resolve().parents[1]


def model_latency_ms(model, frames, repeats=30):
    seg = Segmenter(model, threads=1)
    seg.segment(frames[0])
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        seg.segment(frames[i % len(frames)])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def run_case(node, model, frames, rate_hz, buffer, seconds, env):
    proc = subprocess.Popen([sys.executable, '-m', 'stkd_ros.nodes.segment_node', '--ros-args',
                             '-p', f'model_path:={model}', '-p', 'threads:=1', '-p',
                             f'frame_buffer:={buffer}', '-p', f'qos_depth:={buffer}', '-p',
                             'publish_color:=false', '-p', 'publish_overlay:=false',
                             '-r', 'image:=/bench/image', '-r',
                             '/segmentation/mask:=/bench/mask'],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(buffer, 1),
                     reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, '/bench/image', qos)
    latencies = []

    def on_mask(msg):
        sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        latencies.append((time.time_ns() - sent) / 1e6)
    sub = node.create_subscription(Image, '/bench/mask', on_mask, QoSProfile(depth=100))
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(2.0)
        h, w = frames[0].shape[:2]
        datas = [f.tobytes() for f in frames]
        sent, period = 0, 1.0 / rate_hz
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=datas[sent % 8])
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            pub.publish(msg)
            sent += 1
            next_at = start + sent * period
            while time.monotonic() < next_at:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_at - time.monotonic()))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_publisher(pub)
        node.destroy_subscription(sub)
        proc.terminate()
        proc.wait(timeout=10)
    lat = np.array(latencies[3:]) if len(latencies) > 5 else np.array(latencies)
    return {'sent': sent, 'received': len(latencies),
            'throughput_hz': len(latencies) / seconds,
            'e2e_p50_ms': float(np.percentile(lat, 50)) if len(lat) else float('nan'),
            'e2e_p95_ms': float(np.percentile(lat, 95)) if len(lat) else float('nan')}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--model', required=True, help='model file')
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    env = {**os.environ, 'ROS_DOMAIN_ID': str(random.randint(120, 200)),
           'FASTDDS_DEFAULT_PROFILES_FILE': str(ROOT / 'config' / 'fastdds_profile.xml')}
    os.environ.update(env)
    world = SyntheticWorld(SyntheticConfig(height=360, width=480, frames=8, seed=3))
    frames = [world.frame(0, t)[0] for t in range(8)]
    model_ms = model_latency_ms(args.model, frames)
    rclpy.init()
    node = rclpy.create_node('node_latency_bench')
    rows = []
    try:
        for buffer in (1, 10):
            for load in (1.0, 3.0):
                rate = load * 1e3 / model_ms
                r = run_case(node, args.model, frames, rate, buffer, args.seconds, env)
                r.update({'buffer': 'latest frame' if buffer == 1 else 'queue of 10',
                          'load': f'{load:.0f}x', 'rate_hz': rate, 'model_ms': model_ms,
                          'target_ms': 1.15 * model_ms + 3})
                rows.append(r)
                print(r, flush=True)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    emit('node_latency', rows, ['buffer', 'load', 'rate_hz', 'model_ms', 'e2e_p50_ms',
                                'e2e_p95_ms', 'target_ms', 'sent', 'received',
                                'throughput_hz'], args.out)


if __name__ == '__main__':
    main()
