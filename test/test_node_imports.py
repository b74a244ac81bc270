"""
Nodes without PyTorch: real node processes report which modules they loaded.

Each node runs under a small wrapper that blocks SIGUSR1 in every thread and gives it to one
thread of its own (``sigwait``), which writes the process's ``sorted(sys.modules)`` to the
file named by ``STKD_MODULES_FILE``; the node itself runs unchanged (its ``main``). The test
asks once the node has served (a mask, a flicker value), so what a frame loads is counted.
"""

import os
import signal
import subprocess
import sys
import time

import cv2
from model_helpers import tiny_model_file
import numpy as np
import pytest
from ros_harness import image_msg, qos, ros_env, stop_node, until_answered
from sensor_msgs.msg import Image
from std_msgs.msg import Float32
from stkd_ros.commands.export import export_onnx

pytestmark = [pytest.mark.ros, pytest.mark.slow]
EVENT_TIMEOUT = 60.0
TORCH = {'torch', 'torchvision', 'timm'}

WRAPPER = """
import os, signal, sys, threading

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # inherited by every thread


def report():
    signal.sigwait({signal.SIGUSR1})
    path = os.environ['STKD_MODULES_FILE']
    with open(path + '.part', 'w') as f:
        f.write('\\n'.join(sorted(sys.modules)))
    os.replace(path + '.part', path)


threading.Thread(target=report, daemon=True).start()
from stkd_ros.nodes.%s import main
main()
"""


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('model')
    path = tiny_model_file(folder / 'student.safetensors', seed=0)
    onnx = export_onnx(path, folder / 'student.onnx')
    return {'torch': path, 'onnxruntime': onnx, 'openvino': onnx}


def _start(module, modules_file, *ros_args):
    env = {**ros_env(), 'STKD_MODULES_FILE': str(modules_file)}
    return subprocess.Popen([sys.executable, '-c', WRAPPER % module, '--ros-args', *ros_args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _modules(proc, modules_file) -> set:
    """Ask the running node for its modules; wait for the answer (or the node's end)."""
    os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not modules_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert modules_file.exists(), f'no module list; the node said:\n{stop_node(proc)}'
    return set(modules_file.read_text().split())


def _loaded(modules: set) -> set:
    return {name.split('.')[0] for name in modules} & TORCH


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino', 'torch'])
def test_segment_node_loads_pytorch_only_for_the_torch_backend(ros, models, tmp_path, backend):
    listing = tmp_path / 'modules.txt'
    proc = _start('segment_node', listing, '-p', f'model_path:={models[backend]}', '-p',
                  f'backend:={backend}', '-r', 'image:=/imp/image', '-r',
                  '/segmentation/mask:=/imp/mask')
    masks = []
    sub = ros.create_subscription(Image, '/imp/mask', masks.append, qos(True))
    pub = ros.create_publisher(Image, '/imp/image', qos(True))
    frame = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 255, (120, 160, 3),
                                                               dtype=np.uint8), (0, 0), 2)
    try:
        assert until_answered(ros, lambda: pub.publish(image_msg(frame, 1_000_000_000)),
                              lambda: masks, EVENT_TIMEOUT), 'no mask'
        modules = _modules(proc, listing)
    finally:
        out = stop_node(proc)
        ros.destroy_publisher(pub)
        ros.destroy_subscription(sub)
    assert 'stkd_ros.inference' in modules, out
    if backend == 'torch':
        assert _loaded(modules) >= {'torch', 'torchvision'}, out
    else:
        assert backend in modules and not _loaded(modules), _loaded(modules)


def test_flicker_monitor_with_dis_flow_loads_no_pytorch(ros, tmp_path):
    listing = tmp_path / 'modules.txt'
    proc = _start('flicker_node', listing, '-r', 'image:=/fimp/image', '-r',
                  '/segmentation/mask:=/fimp/mask', '-r', '/segmentation/flicker:=/fimp/flicker')
    flicker = []
    sub = ros.create_subscription(Float32, '/fimp/flicker', flicker.append, 10)
    img_pub = ros.create_publisher(Image, '/fimp/image', qos(True))
    mask_pub = ros.create_publisher(Image, '/fimp/mask', qos(True))
    frame = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 255, (120, 160, 3),
                                                               dtype=np.uint8), (0, 0), 2)
    mask = (np.arange(160)[None].repeat(120, 0) // 40).astype(np.uint8)

    def send():   # the same pair twice is a step: flow, its check, and the figures
        img_pub.publish(image_msg(frame, 2_000_000_000))
        mask_pub.publish(image_msg(mask, 2_000_000_000, encoding='mono8'))

    try:
        assert until_answered(ros, send, lambda: flicker, EVENT_TIMEOUT), 'no flicker value'
        modules = _modules(proc, listing)
    finally:
        out = stop_node(proc)
        for entity in (img_pub, mask_pub):
            ros.destroy_publisher(entity)
        ros.destroy_subscription(sub)
    assert 'stkd_ros.flow.pairs' in modules, out
    assert not _loaded(modules), _loaded(modules)
