"""
Benchmark: resident memory of segment_node per backend, and of flicker_monitor, under load.

For each backend (torch, onnxruntime, openvino), a segment_node under /bench and a
flicker_monitor beside it; this process publishes 480x640 rgb8 frames at ``--rate`` Hz (15)
for ``--seconds`` (240) and counts the masks and flicker values that come back. Each node's
resident memory (VmRSS) is read once it has served its first frame, at the 2-minute mark and
at the end, with its parts at the end: private (RssAnon), mapped files (RssFile: libraries,
shared with every process that maps them) and shared memory (RssShmem: Fast DDS's
shared-memory segments, the node's own and those of the publishers it reads), and its PSS
(shared pages divided among the processes that map them: what the node adds to a machine
running many). The model: an LR-ASPP student with random weights at ``--input-size`` (its
memory, not its accuracy), the ONNX backends reading its `stkd export`.

Targets (issue 47): segment_node with a torch-free backend at most 250 MB after 4 minutes at
15 Hz; flicker_monitor at most 200 MB. Memory, not speed: it may run beside other work.
"""

import argparse
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

from node_bench import bench_node, camera_frames, model_file, rss_mib, use_private_domain
import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from report import emit
from sensor_msgs.msg import Image
from std_msgs.msg import Float32
from stkd_ros.commands.export import export_onnx

MB_PER_MIB = 1.048576
TARGETS_MB = {'segment_node': 250.0, 'flicker_monitor': 200.0}


def _kb(text: str, key: str) -> int:
    return int(text.split(f'{key}:')[1].split()[0])


def rss_parts_mb(pid: int) -> dict:
    """
    Read the resident memory's parts and the proportional set size, in MB.

    Private (anon), mapped files, shared memory (DDS's SHM), and PSS (each shared page divided
    among the processes mapping it).
    """
    status = Path(f'/proc/{pid}/status').read_text()
    parts = {f'{key.lower()}_mb': _kb(status, key) * 1.024e-3
             for key in ('RssAnon', 'RssFile', 'RssShmem')}
    parts['pss_mb'] = _kb(Path(f'/proc/{pid}/smaps_rollup').read_text(), 'Pss') * 1.024e-3
    return parts


def start(module: str, *params):
    args = [a for p in params for a in ('-p', p)]
    return subprocess.Popen([sys.executable, '-m', f'stkd_ros.nodes.{module}', '--ros-args',
                             *args, '-r', '__ns:=/bench'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(node, condition, seconds: float, what: str):
    """Spin until ``condition()`` holds; a clear exit when it does not within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f'node_memory: {what} did not happen within {seconds:.0f} s')
        rclpy.spin_once(node, timeout_sec=0.1)


def run_case(node, backend: str, model: str, frames, rate: float, seconds: float) -> list:
    procs = {'segment_node': start('segment_node', f'model_path:={model}',
                                   f'backend:={backend}', 'threads:=2',
                                   'publish_color:=false', 'publish_overlay:=false'),
             'flicker_monitor': start('flicker_node')}
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Image, '/bench/image', qos)
    counts = {'masks': 0, 'flicker': 0}
    subs = [node.create_subscription(Image, '/bench/segmentation/mask',
                                     lambda _: counts.__setitem__('masks', counts['masks'] + 1),
                                     10),
            node.create_subscription(Float32, '/bench/segmentation/flicker',
                                     lambda _: counts.__setitem__('flicker',
                                                                  counts['flicker'] + 1), 10)]
    h, w = frames[0].shape[:2]
    datas = [f.tobytes() for f in frames]
    memory = {name: {} for name in procs}
    parts = {}

    def send(i):
        msg = Image(height=h, width=w, encoding='rgb8', step=w * 3, data=datas[i % len(datas)])
        msg.header.frame_id = 'camera'
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
        pub.publish(msg)

    def read(mark):
        for name, proc in procs.items():
            if proc.poll() is not None:
                sys.exit(f'node_memory: {name} ({backend}) ended with {proc.returncode}')
            memory[name][mark] = rss_mib(proc.pid) * MB_PER_MIB
            if mark == 'end':
                parts[name] = rss_parts_mb(proc.pid)

    try:
        wait_for(node, lambda: pub.get_subscription_count() >= 2, 120, 'both nodes subscribing')
        sent = 0
        while not counts['flicker']:   # the first frames load the model and the flow
            send(sent)
            sent += 1
            rclpy.spin_once(node, timeout_sec=1.0 / rate)
            if sent > rate * 120:
                sys.exit(f'node_memory: no flicker value after {sent} frames ({backend})')
        read('served')
        served = dict(counts)
        start_s, sent = time.monotonic(), 0
        marks = [(120.0, '2min')] if seconds > 120 else []
        marks.append((seconds, 'end'))
        while marks:
            send(sent)
            sent += 1
            next_at = start_s + sent / rate
            while time.monotonic() < next_at:
                rclpy.spin_once(node, timeout_sec=max(0.0, next_at - time.monotonic()))
            if time.monotonic() - start_s >= marks[0][0]:
                read(marks.pop(0)[1])
    finally:
        node.destroy_publisher(pub)
        for sub in subs:
            node.destroy_subscription(sub)
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=20)
    rows = []
    for name, marks_mb in memory.items():
        served_count = counts['masks' if name == 'segment_node' else 'flicker']
        served_count -= served['masks' if name == 'segment_node' else 'flicker']
        row = {'node': name, 'backend': backend if name == 'segment_node' else f'(beside '
               f'{backend})', 'frames_sent': sent, 'answers': served_count,
               'answers_per_s': served_count / seconds,
               **{f'rss_{k}_mb': v for k, v in marks_mb.items()}, **parts[name]}
        torch_free = name == 'flicker_monitor' or backend != 'torch'
        if torch_free:
            row['target_mb'] = TARGETS_MB[name]
            row['target'] = 'met' if marks_mb['end'] <= TARGETS_MB[name] else 'missed'
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backends', default='torch,onnxruntime,openvino')
    parser.add_argument('--seconds', type=float, default=240.0)
    parser.add_argument('--rate', type=float, default=15.0)
    parser.add_argument('--frame-size', default='480x640', help='camera frames, HxW')
    parser.add_argument('--input-size', default='360x480', help="the model's input, HxW")
    parser.add_argument('--model', default=None, help='a trained model file (default: random)')
    parser.add_argument('--dds-profile', default=None,
                        help="a Fast DDS profile in place of the package's (its shared-memory "
                             "segment size is counted in every node's RSS)")
    parser.add_argument('--out', default=None, help='JSON folder (default bench/results)')
    args = parser.parse_args()
    use_private_domain()
    if args.dds_profile:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(Path(args.dds_profile).resolve())
    frame_size = tuple(int(v) for v in args.frame_size.split('x'))
    input_size = tuple(int(v) for v in args.input_size.split('x'))
    frames = camera_frames(8, frame_size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, bench_node('node_memory') as node:
        model = model_file(args.model, tmp, input_size)
        onnx = str(export_onnx(model, Path(tmp) / 'student.onnx'))
        for backend in args.backends.split(','):
            rows += run_case(node, backend, onnx if backend != 'torch' else str(model),
                             frames, args.rate, args.seconds)
            print(rows[-2], rows[-1], flush=True)
    emit('node_memory', rows, ['node', 'backend', 'frames_sent', 'answers_per_s',
                               'rss_served_mb', 'rss_2min_mb', 'rss_end_mb', 'rssanon_mb',
                               'rssfile_mb', 'rssshmem_mb', 'pss_mb', 'target_mb', 'target'],
         args.out)


if __name__ == '__main__':
    main()
