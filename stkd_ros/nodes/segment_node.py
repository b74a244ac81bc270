"""
segment_node: camera images in, per-frame class masks out, for one camera or several.

Subscribes to ``image`` (sensor_msgs/Image, or CompressedImage with input_transport
'compressed'); publishes ``segmentation/mask`` (mono8 class ids), ``segmentation/color`` and
``segmentation/overlay`` (rgb8), each at the input's size with the input's header and only
when subscribed; and ``/diagnostics``. With ``cameras: [front, rear]`` the same topics live
under each camera's name (``front/image`` -> ``front/segmentation/mask``) and one model
segments the newest frame of every camera in one batched forward pass. With
``temporal_fusion`` each camera's class probabilities are fused with its own past carried
along the flow (``stkd_ros.temporal_fusion``; off by default). Inference runs on its
own thread behind a latest-frame slot per camera, so under overload old frames are dropped,
not queued. A frame whose processing raises is counted and reported (traceback once per
kind, ``/diagnostics`` ERROR) and the next frame is served; after ``max_consecutive_failures``
in a row the node exits with status 1, for launch's ``respawn`` to start it again.
"""

from dataclasses import dataclass, field
import threading
import time
import traceback
from typing import Optional

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, SetParametersResult
import rclpy
from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.validate_topic_name import validate_topic_name
from sensor_msgs.msg import CompressedImage, Image

from stkd_ros.data.classes import palette_lut
from stkd_ros.errors import InputError
from stkd_ros.image_msgs import fill_image, ImageError, message_to_rgb
from stkd_ros.inference import Segmenter
from stkd_ros.nodes.adaptive_qos import AdaptiveSubscription
from stkd_ros.nodes.diagnostics import diagnostic_array, diagnostic_status
from stkd_ros.nodes.frame_failures import FrameFailures, one_line
from stkd_ros.nodes.frame_slot import FrameSlots
from stkd_ros.nodes.parameters import declare, describe, int_range
from stkd_ros.nodes.process import GiveUp, run, TEARDOWN_DEADLINE_S
from stkd_ros.nodes.stats import RollingStats
from stkd_ros.temporal_fusion import FusionSettings, header_seconds, TemporalFusion

# Outputs: reliable, keep last 10 (the default QoS). A reliable publisher serves both
# reliable subscribers (`ros2 bag record`, RViz) and best-effort ones.
OUTPUT_QOS = 10
OUTPUTS = ('mask', 'color', 'overlay')


@dataclass
class Camera:
    """One camera's publishers and figures; '' is the single camera on ``image``."""

    name: str
    pub: dict = field(default_factory=dict)
    stats: RollingStats = field(default_factory=RollingStats)
    failed_at_report: int = 0   # the failed count in the last /diagnostics message
    fusion: Optional[TemporalFusion] = None   # this camera's fused past (temporal_fusion)

    @property
    def prefix(self) -> str:
        """'' for the single camera, 'name/' for a named one."""
        return f'{self.name}/' if self.name else ''


class SegmentNode(Node):
    """
    Segment every image of each camera with one model file and publish the class masks.

    The work is :class:`stkd_ros.inference.Segmenter`'s: the model file's preprocessing and
    the class map at the image's size, the same masks that ``stkd evaluate`` scores.
    Parameters are declared up front (see ``_declare``) and read once; only ``publish_*`` and
    ``overlay_alpha`` change live. A subscription callback only stores the frame; a worker
    thread runs the model on the newest stored frame of every camera at once, so a slow model
    drops frames instead of queueing them (``frame_buffer`` > 1 turns each slot into a queue,
    for replaying bags). A frame that raises is counted and the worker goes on with the next
    one; a worker that cannot go on ends the node (:class:`GiveUp`).
    """

    slot = None   # set once the parameters are valid; destroy_node may run before

    def __init__(self, **kwargs):
        super().__init__('segment_node', **kwargs)
        p = self._declare()
        size = tuple(p['input_size']) if any(p['input_size']) else None
        self.segmenter = Segmenter(p['model_path'], backend=p['backend'], device=p['device'],
                                   threads=p['threads'], onnx_path=p['onnx_path'] or None,
                                   input_size=size, precision=p['precision'] or None)
        if p['palette']:
            self.segmenter.lut = palette_lut(np.array(p['palette'], np.uint8).reshape(-1, 3))
        self.overlay_alpha = p['overlay_alpha']
        self.publish_flags = {k: p[f'publish_{k}'] for k in OUTPUTS}
        self.reliability_setting, self.depth = p['reliability'], p['qos_depth']
        self.compressed = p['input_transport'] == 'compressed'
        names = p['cameras'] or ['']
        self.fusion = self._fusion_settings(p)
        self.cameras = {n: Camera(n, fusion=self.fusion and TemporalFusion(self.fusion))
                        for n in names}
        for cam in self.cameras.values():
            cam.pub = {k: self.create_publisher(Image, f'{cam.prefix}segmentation/{k}',
                                                OUTPUT_QOS) for k in OUTPUTS}
        self.diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.slot = FrameSlots(names, p['frame_buffer'])
        self.wait_for_mask = p['wait_for_mask_subscribers']
        self.failures = FrameFailures(p['max_consecutive_failures'])
        self.give_up = GiveUp(self)
        self.image_subs = [AdaptiveSubscription(
            self, CompressedImage if self.compressed else Image, f'{cam.prefix}image',
            lambda msg, name=cam.name: self._on_image(name, msg), self.reliability_setting,
            self.depth) for cam in self.cameras.values()]
        self.create_timer(p['diagnostics_period'], self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set)
        # Workers take the newest frames in turn and publish in the order they took them.
        self._take_lock, self._turn = threading.Lock(), threading.Condition()
        self._tickets = self._serving = 0
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(p['workers'])]
        for worker in self._workers:
            worker.start()
        topics = ', '.join(self.resolve_topic_name(f'{c.prefix}image')
                           for c in self.cameras.values())
        self.get_logger().info(
            f'segmenting {topics} with {self.segmenter.meta["arch"]} ({p["backend"]} '
            f'{self.segmenter.precision}, '
            f'{p["device"]}, input {self.segmenter.input_size[0]}x'
            f'{self.segmenter.input_size[1]}); temporal fusion '
            f'{self.fusion.describe() if self.fusion else "off"}')

    def _declare(self) -> dict:
        fusion, unit = FusionSettings(), [FloatingPointRange(from_value=0.0, to_value=1.0,
                                                             step=0.0)]
        specs = [
            ('model_path', '', describe('model file: .safetensors, or .onnx from `stkd export` '
                                        'for the onnxruntime and openvino backends', True)),
            ('backend', 'torch', describe('torch, onnxruntime or openvino', True)),
            ('onnx_path', '', describe('ONNX file for the onnxruntime and openvino backends '
                                       'when model_path is the .safetensors file', True)),
            ('precision', '', describe("openvino's inference precision: bf16 or f32; empty = "
                                       'bf16 where the CPU has it', True)),
            ('device', 'cpu', describe('torch device: cpu, cuda, cuda:N', True)),
            ('threads', 0, describe('CPU threads for inference, 0 = library default', True,
                                    integer_range=int_range(0, 256))),
            ('workers', 1, describe('inference workers, each running the model on the newest '
                                    'frames in turn (with threads each)', True,
                                    integer_range=int_range(1, 64))),
            ('input_size', [0, 0], describe('model input [height, width]; [0, 0] keeps the '
                                            'model file size', True)),
            ('input_transport', 'raw', describe('raw (Image) or compressed '
                                                '(CompressedImage)', True)),
            ('publish_mask', True, describe('publish segmentation/mask (mono8 class ids)')),
            ('publish_color', True, describe('publish segmentation/color (rgb8)')),
            ('publish_overlay', True, describe('publish segmentation/overlay (rgb8)')),
            ('overlay_alpha', 0.5, describe('weight of the colours in the overlay',
                                            floating_point_range=unit)),
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
            ('cameras', Parameter.Type.STRING_ARRAY, describe(
                'camera names: NAME/image in, NAME/segmentation/* out, all batched in one '
                'forward pass; empty = one camera on image', True)),
            ('max_consecutive_failures', 10, describe(
                'frames failing in a row (an exception in the model or the publishing) after '
                'which the node exits with status 1, so that launch respawn can start it '
                'again; 0 = never', True, integer_range=int_range(0))),
            ('temporal_fusion', False, describe(
                "fuse each frame's class probabilities with its camera's past carried along "
                'the optical flow (stkd_ros.temporal_fusion); false = per-frame masks', True)),
            ('fusion_fresh_weight', fusion.fresh_weight, describe(
                "temporal fusion: the fresh prediction's least weight (at no confidence)",
                True, floating_point_range=unit)),
            ('fusion_confidence_weight', fusion.confidence_weight, describe(
                "temporal fusion: how far the fresh prediction's confidence lifts its weight "
                'toward 1 (0 = a constant fusion_fresh_weight)', True,
                floating_point_range=unit)),
            ('fusion_photometric_threshold', fusion.photometric_threshold, describe(
                'temporal fusion: mean RGB difference (0..1) above which a pixel carried '
                'along the flow is taken as occluded', True, floating_point_range=unit)),
            ('fusion_cut_share', fusion.cut_share, describe(
                'temporal fusion: share of occluded pixels above which a frame is a scene cut '
                "and the camera's fusion starts over", True, floating_point_range=unit)),
            ('fusion_max_gap', fusion.max_gap_s, describe(
                "temporal fusion: seconds between stamps above which the camera's fusion "
                'starts over (zero stamps are not checked)', True)),
            ('fusion_flow_finest_scale', fusion.flow_finest_scale, describe(
                "temporal fusion: the finest DIS level of the flow, 0 = the model's output "
                'grid, each step up halves it (cheaper, coarser motion)', True)),
        ]
        values = declare(self, specs)
        if not values['model_path']:
            raise InputError('parameter model_path is required (a .safetensors or .onnx '
                             'model file)')
        cameras = values['cameras']
        if len(set(cameras)) != len(cameras) or '' in cameras:
            raise InputError(f'cameras must be distinct non-empty names, got {cameras}')
        for name in cameras:
            try:
                validate_topic_name(f'{name}/image')
            except InvalidTopicNameException:
                raise InputError(f'camera name {name!r} does not make a valid topic name '
                                 f'(letters, digits, _ and /)') from None
        if values['input_transport'] not in ('raw', 'compressed'):
            raise InputError(f'input_transport must be raw or compressed, got '
                             f'{values["input_transport"]!r}')
        return values

    @staticmethod
    def _fusion_settings(p: dict) -> Optional[FusionSettings]:
        if not p['temporal_fusion']:
            return None
        if p['workers'] > 1:
            raise InputError(f'temporal_fusion fuses each frame with the one before: it needs '
                             f'workers 1, got {p["workers"]}')
        return FusionSettings(fresh_weight=p['fusion_fresh_weight'],
                              confidence_weight=p['fusion_confidence_weight'],
                              photometric_threshold=p['fusion_photometric_threshold'],
                              cut_share=p['fusion_cut_share'], max_gap_s=p['fusion_max_gap'],
                              flow_finest_scale=p['fusion_flow_finest_scale'])

    def _on_set(self, params):
        for param in params:
            if param.name == 'overlay_alpha':
                self.overlay_alpha = float(param.value)
            elif param.name.startswith('publish_'):
                self.publish_flags[param.name[len('publish_'):]] = bool(param.value)
        return SetParametersResult(successful=True)

    def _on_image(self, camera: str, msg):
        self.cameras[camera].stats.counts['received'] += 1
        self.slot.put(camera, (time.monotonic(), msg))

    def _run(self):
        """Serve frames until the node ends (a worker thread); never end quietly."""
        try:
            self._serve()
        except Exception as exc:   # a bug outside a frame's processing: this worker is lost
            if rclpy.ok():
                self.get_logger().error(f'inference worker stopped:\n{traceback.format_exc()}')
                self.give_up(f'inference worker stopped: {one_line(exc)}')

    def _serve(self):
        # Output discovery can lag the input's by seconds on a loaded machine; a mask published
        # before its subscriber matched is lost, so a replay waits for it here.
        while rclpy.ok() and not self.slot.closed and any(
                c.pub['mask'].get_subscription_count() < self.wait_for_mask
                for c in self.cameras.values()):
            time.sleep(0.05)
        while rclpy.ok() and not self.slot.closed:
            with self._take_lock:
                taken = self.slot.take(timeout=0.5)
                if not taken:
                    continue
                ticket, self._tickets = self._tickets, self._tickets + 1
            try:
                self._process(taken, ticket)
            except Exception as exc:
                if not rclpy.ok():   # a publish that raced Ctrl-C: the node is going away
                    return
                if self._failed(taken, exc):
                    return
            else:
                self.failures.served()
            finally:
                with self._turn:   # a failed batch must not hold up the next one
                    self._serving = max(self._serving, ticket + 1)
                    self._turn.notify_all()

    def _failed(self, taken: dict, exc: Exception) -> bool:
        """Count and report a frame that raised; True when the node gives up."""
        for name in taken:
            self.cameras[name].stats.counts['failed'] += 1
        verdict, f = self.failures.failed(exc), self.failures
        if verdict.first_of_its_kind:
            self.get_logger().error(f'a frame failed ({f.total} so far); serving the next '
                                    f'one:\n{traceback.format_exc()}')
        else:
            self.get_logger().error(f'frames keep failing ({f.total} so far, '
                                    f'{f.consecutive} in a row): {f.last}',
                                    throttle_duration_sec=5.0)
        if verdict.give_up:
            self.give_up(f'{f.consecutive} frames in a row failed (max_consecutive_failures '
                         f'{f.max_consecutive}); last: {f.last}')
        return verdict.give_up

    def _process(self, taken: dict, ticket: int):
        """Segment the frames taken from the cameras in one pass and publish each result."""
        jobs = []   # (camera, header, frame, outputs wanted, received)
        for name, (received, msg) in taken.items():
            cam = self.cameras[name]
            want = {k: self.publish_flags[k] and cam.pub[k].get_subscription_count() > 0
                    for k in OUTPUTS}
            if not any(want.values()):   # nobody listens: not even decoded
                continue
            try:
                frame = message_to_rgb(msg)
            except ImageError as exc:
                cam.stats.counts['rejected'] += 1
                self.get_logger().warning(f'rejected image{" from " + name if name else ""}: '
                                          f'{exc}', throttle_duration_sec=5.0)
                continue
            jobs.append((cam, msg.header, frame, want, received))
        frames = [j[2] for j in jobs]
        if not jobs:
            masks = []
        elif self.fusion:
            masks = self.segmenter.segment_batch(
                frames, [j[0].fusion for j in jobs], [header_seconds(j[1].stamp) for j in jobs])
        else:
            masks = self.segmenter.segment_batch(frames)
        with self._turn:   # masks leave in the order their frames were taken
            while self._serving < ticket and not self.slot.closed:
                self._turn.wait(0.5)
        for (cam, header, frame, want, received), classes in zip(jobs, masks):
            if want['mask']:
                cam.pub['mask'].publish(fill_image(Image(), classes, 'mono8', header))
            if want['color']:
                color = self.segmenter.colorize(classes)
                cam.pub['color'].publish(fill_image(Image(), color, 'rgb8', header))
            if want['overlay']:
                overlay = self.segmenter.overlay(frame, classes, self.overlay_alpha)
                cam.pub['overlay'].publish(fill_image(Image(), overlay, 'rgb8', header))
            cam.stats.record(time.monotonic() - received)

    def _publish_diagnostics(self):
        statuses = []
        for name, cam in self.cameras.items():
            cam.stats.counts['dropped'] = self.slot.dropped[name]
            s = cam.stats.summary()
            message = f'{s["rate_hz"]:.1f} Hz, p95 {s["p95_ms"]:.1f} ms'
            # ERROR for the period in which a frame failed, and while the latest one fails.
            if s['failed'] > cam.failed_at_report or self.failures.consecutive:
                level = DiagnosticStatus.ERROR
                message = f'{s["failed"]} frames failed, last {self.failures.last}; {message}'
            else:
                level = DiagnosticStatus.OK if s['rejected'] == 0 else DiagnosticStatus.WARN
            cam.failed_at_report = s['failed']
            statuses.append(diagnostic_status(
                self, f'segmentation {name}'.strip(), self.segmenter.meta['arch'], message, s,
                level))
        self.diag_pub.publish(diagnostic_array(self, statuses))

    def destroy_node(self):
        if self.slot is not None:
            # Let the worker finish its frame: a process that exits while it is inside the
            # model or a publish aborts ("terminate called without an active exception").
            # A real-time model's frame takes milliseconds; the wait stays inside run()'s
            # teardown deadline.
            self.slot.close()
            end = time.monotonic() + TEARDOWN_DEADLINE_S / 2
            for worker in self._workers:
                worker.join(timeout=max(0.0, end - time.monotonic()))
        return super().destroy_node()


def main(args=None):
    run(SegmentNode, 'segment_node', args)


if __name__ == '__main__':
    main()
