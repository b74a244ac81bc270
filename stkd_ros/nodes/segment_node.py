"""
segment_node: camera images in, per-frame class masks out.

Subscribes to ``image`` (sensor_msgs/Image, or CompressedImage with input_transport
'compressed'); publishes ``segmentation/mask`` (mono8 class ids), ``segmentation/color`` and
``segmentation/overlay`` (rgb8), each at the input's size with the input's header and only
when subscribed; and ``/diagnostics``. Inference runs on its own thread behind a
latest-frame-only slot, so under overload old frames are dropped, not queued.
"""

import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, SetParametersResult
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image

from stkd_ros.data.classes import palette_lut
from stkd_ros.errors import InputError
from stkd_ros.image_msgs import fill_image, ImageError, message_to_rgb
from stkd_ros.inference import Segmenter
from stkd_ros.nodes.adaptive_qos import AdaptiveSubscription
from stkd_ros.nodes.frame_slot import LatestSlot
from stkd_ros.nodes.lifecycle import diagnostics, run
from stkd_ros.nodes.parameters import declare, describe, int_range
from stkd_ros.nodes.stats import RollingStats

# Outputs: reliable, keep last 10 (the default QoS). A reliable publisher serves both
# reliable subscribers (`ros2 bag record`, RViz) and best-effort ones.
OUTPUT_QOS = 10


class SegmentNode(Node):
    """
    Segment every image of ``image`` with one model file and publish the class mask.

    The work is :class:`stkd_ros.inference.Segmenter`'s: the model file's preprocessing and
    the class map at the image's size, the same masks that ``stkd evaluate`` scores.
    Parameters are declared up front (see ``_declare``) and read once; only ``publish_*`` and
    ``overlay_alpha`` change live. The subscription callback only stores the frame; a worker
    thread runs the model on the newest stored frame, so a slow model drops frames instead of
    queueing them (``frame_buffer`` > 1 turns the slot into a queue, for replaying bags).
    """

    slot = None   # set once the parameters are valid; destroy_node may run before

    def __init__(self, **kwargs):
        super().__init__('segment_node', **kwargs)
        p = self._declare()
        size = tuple(p['input_size']) if any(p['input_size']) else None
        self.segmenter = Segmenter(p['model_path'], backend=p['backend'], device=p['device'],
                                   threads=p['threads'], onnx_path=p['onnx_path'] or None,
                                   input_size=size)
        if p['palette']:
            self.segmenter.lut = palette_lut(np.array(p['palette'], np.uint8).reshape(-1, 3))
        self.overlay_alpha = p['overlay_alpha']
        self.publish_flags = {k: p[f'publish_{k}'] for k in ('mask', 'color', 'overlay')}
        self.reliability_setting, self.depth = p['reliability'], p['qos_depth']
        self.compressed = p['input_transport'] == 'compressed'
        self.pub = {k: self.create_publisher(Image, f'segmentation/{k}', OUTPUT_QOS)
                    for k in ('mask', 'color', 'overlay')}
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.stats, self.slot = RollingStats(), LatestSlot(p['frame_buffer'])
        self.wait_for_mask = p['wait_for_mask_subscribers']
        self.image_sub = AdaptiveSubscription(
            self, CompressedImage if self.compressed else Image, 'image', self._on_image,
            self.reliability_setting, self.depth)
        self.create_timer(p['diagnostics_period'], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set)
        self._worker = threading.Thread(target=self._run, daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'segmenting {self.resolve_topic_name("image")} with '
            f'{self.segmenter.meta["arch"]} ({p["backend"]}, {p["device"]}, input '
            f'{self.segmenter.input_size[0]}x{self.segmenter.input_size[1]})')

    def _declare(self) -> dict:
        specs = [
            ('model_path', '', describe('model file: .safetensors, or .onnx from `stkd export` '
                                        'for the onnxruntime backend', True)),
            ('backend', 'torch', describe('torch or onnxruntime', True)),
            ('onnx_path', '', describe('ONNX file for the onnxruntime backend when model_path '
                                       'is the .safetensors file', True)),
            ('device', 'cpu', describe('torch device: cpu, cuda, cuda:N', True)),
            ('threads', 0, describe('CPU threads for inference, 0 = library default', True,
                                    integer_range=int_range(0, 256))),
            ('input_size', [0, 0], describe('model input [height, width]; [0, 0] keeps the '
                                            'model file size', True)),
            ('input_transport', 'raw', describe('raw (Image) or compressed '
                                                '(CompressedImage)', True)),
            ('publish_mask', True, describe('publish segmentation/mask (mono8 class ids)')),
            ('publish_color', True, describe('publish segmentation/color (rgb8)')),
            ('publish_overlay', True, describe('publish segmentation/overlay (rgb8)')),
            ('overlay_alpha', 0.5, describe('weight of the colours in the overlay',
                                            floating_point_range=[FloatingPointRange(
                                                from_value=0.0, to_value=1.0, step=0.0)])),
            ('reliability', 'auto', describe('image subscription: auto (match the '
                                             'publishers), reliable or best_effort', True)),
            ('qos_depth', 1, describe('image subscription queue depth (1 = latest frame)',
                                      True, integer_range=int_range(1, 100))),
            ('frame_buffer', 1, describe('frames waiting for inference; 1 = latest frame '
                                         'only (bounded latency), more = a queue', True,
                                         integer_range=int_range(1, 100))),
            ('palette', Parameter.Type.INTEGER_ARRAY, describe(
                'flat RGB list (3 ints per class) replacing the model palette; empty = the '
                "model's", True)),
            ('diagnostics_period', 1.0, describe('seconds between /diagnostics messages',
                                                 True)),
            ('wait_for_mask_subscribers', 0, describe(
                'hold the frames (in frame_buffer) until segmentation/mask has this many '
                'matched subscribers, so a replay loses no mask to discovery; 0 = start at '
                'once', True, integer_range=int_range(0, 100))),
        ]
        values = declare(self, specs)
        if not values['model_path']:
            raise InputError('parameter model_path is required (a .safetensors or .onnx '
                             'model file)')
        if values['input_transport'] not in ('raw', 'compressed'):
            raise InputError(f'input_transport must be raw or compressed, got '
                             f'{values["input_transport"]!r}')
        return values

    def _on_set(self, params):
        for param in params:
            if param.name == 'overlay_alpha':
                self.overlay_alpha = float(param.value)
            elif param.name.startswith('publish_'):
                self.publish_flags[param.name[len('publish_'):]] = bool(param.value)
        return SetParametersResult(successful=True)

    def _on_image(self, msg):
        self.stats.counts['received'] += 1
        self.slot.put((time.monotonic(), msg))

    def _run(self):
        # Output discovery can lag the input's by seconds on a loaded machine; a mask published
        # before its subscriber matched is lost, so a replay waits for it here.
        while (rclpy.ok() and not self.slot.closed
               and self.pub['mask'].get_subscription_count() < self.wait_for_mask):
            time.sleep(0.05)
        while rclpy.ok() and not self.slot.closed:
            item = self.slot.take(timeout=0.5)
            if item is None:
                continue
            received, msg = item
            try:
                self._process(msg)
            except ImageError as exc:
                self.stats.counts['rejected'] += 1
                self.get_logger().warning(f'rejected image: {exc}', throttle_duration_sec=5.0)
                continue
            except Exception:
                if not rclpy.ok():   # a publish that raced Ctrl-C: the node is going away
                    return
                raise
            self.stats.record(time.monotonic() - received)

    def _process(self, msg):
        frame = message_to_rgb(msg)
        want = {k: self.publish_flags[k] and self.pub[k].get_subscription_count() > 0
                for k in self.pub}
        if not any(want.values()):
            return
        classes = self.segmenter.segment(frame)
        if want['mask']:
            self.pub['mask'].publish(fill_image(Image(), classes, 'mono8', msg.header))
        if want['color']:
            color = self.segmenter.colorize(classes)
            self.pub['color'].publish(fill_image(Image(), color, 'rgb8', msg.header))
        if want['overlay']:
            overlay = self.segmenter.overlay(frame, classes, self.overlay_alpha)
            self.pub['overlay'].publish(fill_image(Image(), overlay, 'rgb8', msg.header))

    def _publish_diagnostics(self):
        self.stats.counts['dropped'] = self.slot.dropped
        s = self.stats.summary()
        level = DiagnosticStatus.OK if s['rejected'] == 0 else DiagnosticStatus.WARN
        self.diag_pub.publish(diagnostics(
            self, 'segmentation', self.segmenter.meta['arch'],
            f'{s["rate_hz"]:.1f} Hz, p95 {s["p95_ms"]:.1f} ms', s, level))

    def destroy_node(self):
        if self.slot is not None:
            # Let the worker finish its frame: a process that exits while it is inside the
            # model or a publish aborts ("terminate called without an active exception").
            self.slot.close()
            self._worker.join(timeout=5.0)
        return super().destroy_node()


def main(args=None):
    run(SegmentNode, 'segment_node', args)


if __name__ == '__main__':
    main()
