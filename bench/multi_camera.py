"""
Benchmark: several cameras through one batched segment_node against one node per camera.

1, 2 and 4 cameras publish 480x360 rgb8 frames at 10 Hz each (from this process). Batched: one
segment_node with ``cameras`` and every core for inference. Separate: one segment_node per
camera, the cores divided among them (threads = cores // cameras, at least 1), as one would run
them on the same machine. Sustained masks per second over the window, p95 latency (mask
received minus the send time in the header stamp) and the resident memory of the node
processes (VmRSS summed) at the end.

Target (issue 19): at 4 cameras the batched node gives at least 1.3x the masks per second of
four separate nodes, at no worse p95 and a quarter of their memory. Without --model, an LR-ASPP
student with random weights at --input-size (default 256x512, the model's cost, not its
accuracy, is measured).
"""

import argparse
import os
import tempfile
import time

from node_bench import (bench_node, camera_frames, model_file, percentiles_ms, rss_mib,
                        start_segment_node, use_private_domain)
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from report import card, emit
from sensor_msgs.msg import Image


def start_node(model, threads, workers, device, cameras=None, camera=None):
    if cameras:
        extra = ['-p', f'cameras:=[{", ".join(cameras)}]']
    else:   # one node per camera: its own name, its camera's topics
        extra = ['-r', f'__node:=segment_{camera}', '-r', f'image:={camera}/image', '-r',
                 f'segmentation/mask:={camera}/segmentation/mask']
    return start_segment_node(model, threads, workers, device, *extra)


def run_case(node, model, frames, cameras, batched, rate_hz, seconds, device='cpu'):
    """``batched``: None (a node per camera) or 'threads' / 'workers' (how it uses the cores)."""
    cores = os.cpu_count() or 1
    names = [f'cam{i}' for i in range(cameras)]
    if batched:
        threads, workers = (cores, 1) if batched == 'threads' else (1, cores)
        procs = [start_node(model, threads, workers, device, cameras=names)]
    else:
        threads, workers = max(1, cores // cameras), 1
        procs = [start_node(model, threads, workers, device, camera=c) for c in names]
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE)
    pubs = [node.create_publisher(Image, f'/bench/{c}/image', qos) for c in names]
    window = {'start': float('inf'), 'end': float('inf')}
    latencies = []

    def on_mask(msg):
        sent = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if window['start'] <= sent / 1e9 < window['end']:
            latencies.append((time.time_ns() - sent) / 1e6)
    subs = [node.create_subscription(Image, f'/bench/{c}/segmentation/mask', on_mask,
                                     QoSProfile(depth=100)) for c in names]
    try:
        deadline = time.monotonic() + 120
        while (not all(p.get_subscription_count() for p in pubs)
               or not all(s.get_publisher_count() for s in subs)) \
                and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        h, w = frames[0].shape[:2]
        datas = [f.tobytes() for f in frames]
        warmup = 3.0
        start = time.monotonic()
        window['start'] = time.time() + warmup
        window['end'] = window['start'] + seconds
        sent = 0
        while time.monotonic() - start < warmup + seconds:
            for k, pub in enumerate(pubs):
                msg = Image(height=h, width=w, encoding='rgb8', step=w * 3,
                            data=datas[(sent + k) % len(datas)])
                msg.header.frame_id = names[k]
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
                pub.publish(msg)
            sent += 1
            next_at = start + sent / rate_hz
            while time.monotonic() < next_at:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_at - time.monotonic()))
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
        memory = sum(rss_mib(p.pid) for p in procs)
    finally:
        for pub in pubs:
            node.destroy_publisher(pub)
        for sub in subs:
            node.destroy_subscription(sub)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
    return {'device': card(device), 'cameras': cameras,
            'nodes': f'one batched, {batched}' if batched else f'{cameras} separate',
            'threads_per_node': threads, 'workers': workers,
            'offered_hz': cameras * rate_hz,
            'masks_per_s': len(latencies) / seconds,
            **percentiles_ms(latencies), 'rss_mib': memory}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', default=None, help='model file (default: random LR-ASPP)')
    parser.add_argument('--input-size', default='256x512', help='of the random model, HxW')
    parser.add_argument('--cameras', default='1,2,4')
    parser.add_argument('--rate', type=float, default=10.0, help='Hz per camera')
    parser.add_argument('--seconds', type=float, default=10.0)
    parser.add_argument('--device', default='cpu', help='torch device of the nodes: cpu, cuda')
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    use_private_domain()
    tmp = tempfile.TemporaryDirectory()
    size = tuple(int(v) for v in args.input_size.split('x'))
    model = model_file(args.model, tmp.name, size)
    frames = camera_frames()
    rows = []
    with bench_node('multi_camera_bench') as node:
        for cameras in [int(c) for c in args.cameras.split(',')]:
            for batched in (None, 'threads', 'workers'):
                r = run_case(node, model, frames, cameras, batched, args.rate, args.seconds,
                             args.device)
                rows.append(r)
                print(r, flush=True)
    tmp.cleanup()
    separate_of = {r['cameras']: r for r in rows if not r['nodes'].startswith('one')}
    for r in rows:
        separate = separate_of.get(r['cameras'])
        if r['nodes'].startswith('one') and separate and r['cameras'] > 1:
            r['masks_vs_separate'] = r['masks_per_s'] / max(separate['masks_per_s'], 1e-9)
            r['memory_vs_separate'] = r['rss_mib'] / separate['rss_mib']
            r['target'] = 'met' if (r['masks_vs_separate'] >= 1.3
                                    and r['p95_ms'] <= separate['p95_ms']
                                    and r['memory_vs_separate'] <= 0.25) else 'missed'
    emit('multi_camera', rows, ['device', 'cameras', 'nodes', 'threads_per_node', 'workers',
                                'offered_hz', 'masks_per_s', 'p50_ms', 'p95_ms', 'rss_mib',
                                'masks_vs_separate', 'memory_vs_separate', 'target'], args.out)


if __name__ == '__main__':
    main()
