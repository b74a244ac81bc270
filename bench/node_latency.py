"""
Benchmark: segment_node end to end (publish -> mask received) beside the model's own latency.

A publisher process sends 480x360 rgb8 frames at 0.8x, 1x and 3x the model's rate (its own
latency at the node's thread count, measured here first), with the node's latest-frame slot
(frame_buffer 1, the default) and with a queue of 10 for comparison; the node with 1 inference
thread, with 2, and with 2 workers of 1 thread each. The send time travels in the header
stamp; both ends read the same clock.
Each mask is checked against `Segmenter.segment` of its frame (the frame index travels in the
frame_id), and the node process's CPU time per mask is read from /proc.

Targets (issue 19): p50 at most 1.15 x model + 3 ms at 1x; p95 at most 3 x model + 20 ms at 3x.
Without --model, an LR-ASPP student with random weights at 128x256 (latency does not depend on
the weights).
"""

import argparse
import os
from pathlib import Path
import statistics
import tempfile
import time

from node_bench import (bench_node, camera_frames, model_file, percentiles_ms,
                        start_segment_node, use_private_domain)
import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from report import card, emit
from sensor_msgs.msg import Image
from stkd_ros.inference import Segmenter


def model_latency_ms(seg, frames, repeats=30):
    seg.segment(frames[0])
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        seg.segment(frames[i % len(frames)])
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run_case(node, model, frames, expected, rate_hz, buffer, threads, workers, seconds,
             device='cpu'):
    # Under /bench: the image on /bench/image, the masks moved to /bench/mask.
    proc = start_segment_node(model, threads, workers, device, '-p', f'frame_buffer:={buffer}',
                              '-p', f'qos_depth:={buffer}', '-r', 'segmentation/mask:=mask')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(buffer, 1),
                     reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, '/bench/image', qos)
    latencies, equal = [], []

    def on_mask(msg):
        sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        latencies.append((time.time_ns() - sent) / 1e6)
        mask = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        equal.append(float((mask == expected[int(msg.header.frame_id)]).mean()))
    sub = node.create_subscription(Image, '/bench/mask', on_mask, QoSProfile(depth=100))
    try:
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(2.0)
        h, w = frames[0].shape[:2]
        datas = [f.tobytes() for f in frames]
        sent, period = 0, 1.0 / rate_hz
        cpu_start = process_cpu_s(proc.pid)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            i = sent % len(frames)
            msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=datas[i])
            msg.header.frame_id = str(i)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            pub.publish(msg)
            sent += 1
            next_at = start + sent * period
            while time.monotonic() < next_at:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_at - time.monotonic()))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        cpu_s = process_cpu_s(proc.pid) - cpu_start
    finally:
        node.destroy_publisher(pub)
        node.destroy_subscription(sub)
        proc.terminate()
        proc.wait(timeout=10)
    lat = percentiles_ms(latencies[3:] if len(latencies) > 5 else latencies)
    return {'sent': sent, 'received': len(latencies),
            'throughput_hz': len(latencies) / seconds,
            'e2e_p50_ms': lat['p50_ms'], 'e2e_p95_ms': lat['p95_ms'],
            'node_cpu_ms_per_mask': 1e3 * cpu_s / max(len(latencies), 1),
            'mask_pixels_equal_pct': 100 * min(equal) if equal else float('nan')}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default=None, help='model file (default: random LR-ASPP)')
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--setups', default='1x1,2x1,1x2',
                        help='THREADSxWORKERS of the node to compare')
    parser.add_argument('--device', default='cpu', help='torch device of the node: cpu, cuda')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    use_private_domain()
    tmp = tempfile.TemporaryDirectory()
    model = model_file(args.model, tmp.name)
    frames = camera_frames()
    rows = []
    with bench_node('node_latency_bench') as node:
        for setup in args.setups.split(','):
            threads, workers = (int(v) for v in setup.split('x'))
            seg = Segmenter(model, threads=threads, device=args.device)
            expected = [seg.segment(f) for f in frames]
            model_ms = model_latency_ms(seg, frames)
            cases = [(1, 0.8), (1, 1.0), (1, 3.0)] + ([(10, 1.0), (10, 3.0)]
                                                      if setup == '1x1' else [])
            for buffer, load in cases:
                rate = load * 1e3 / model_ms
                r = run_case(node, model, frames, expected, rate, buffer, threads, workers,
                             args.seconds, args.device)
                r.update({'device': card(args.device), 'threads': threads,
                          'workers': workers, 'load': f'{load:g}x',
                          'rate_hz': rate,
                          'buffer': 'latest frame' if buffer == 1 else 'queue of 10',
                          'model_ms': model_ms,
                          'target_ms': (1.15 * model_ms + 3 if load <= 1
                                        else 3 * model_ms + 20)})
                metric = r['e2e_p50_ms'] if load <= 1 else r['e2e_p95_ms']
                r['target'] = ('met' if metric <= r['target_ms'] else 'missed') \
                    if buffer == 1 and load >= 1 else ''
                rows.append(r)
                print(r, flush=True)
    tmp.cleanup()
    emit('node_latency', rows, ['device', 'threads', 'workers', 'buffer', 'load', 'rate_hz',
                                'model_ms', 'e2e_p50_ms', 'e2e_p95_ms', 'target_ms', 'target',
                                'sent', 'received', 'throughput_hz', 'node_cpu_ms_per_mask',
                                'mask_pixels_equal_pct'], args.out)


if __name__ == '__main__':
    main()
