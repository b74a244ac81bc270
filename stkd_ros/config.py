"""
Typed configuration: dataclasses with YAML files as defaults and ``--set key=value`` overrides.

Unknown keys and wrong types stop with one line naming the key, e.g.
``config: train.stpes: unknown key (known: amp, batch_size, ...)``.
"""

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
import typing
from typing import Any, Dict, List, Optional

from stkd_ros.data.synthetic import SyntheticConfig
from stkd_ros.errors import InputError
from stkd_ros.flow.base import FLOW_METHODS
import yaml


class ConfigError(InputError):
    """A configuration file or override that does not fit the schema."""


def _one_of(key: str, value, allowed, what: str):
    """Stop with one line naming ``key`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(f'config: {key}: unknown {what} {value!r}; expected one of '
                          f'{", ".join(map(str, allowed))}')


@dataclass
class SyntheticDataConfig(SyntheticConfig):
    """The synthetic world's settings (SyntheticConfig, checked there) and its splits."""

    height: int = 128
    width: int = 256
    train_clips: int = 40
    val_clips: int = 6          # held-out streets, reported
    tune_clips: int = 8         # held-out streets of their own, for choosing settings
    keys_per_clip: int = 4
    label_every: int = 1        # training labels on one frame in N (Cityscapes, CamVid: 30)
    unlabeled_clips: int = 0    # never-labeled streets: unlabeled video for distillation
    render_cache: Optional[str] = None   # keep rendered frames here (shared by runs)


DATASETS = ('synthetic', 'camvid', 'cityscapes')
OPTIMIZERS = ('sgd', 'adamw')
SPLITS = ('val', 'tune')
TEMPORAL_GATES = ('none', 'confidence', 'agreement')
TEACHER_PRECISIONS = ('auto', 'fp32', 'bf16')     # stkd_ros/teacher_precision.py


@dataclass
class DataConfig:
    dataset: str = 'synthetic'              # synthetic | camvid | cityscapes
    root: Optional[str] = None              # dataset root for camvid / cityscapes
    camvid_labels: int = 11                 # 11 (SegNet files) or 32 (colour labels)
    crop_size: List[int] = field(default_factory=lambda: [128, 256])
    scale_range: List[float] = field(default_factory=lambda: [0.75, 1.5])
    eval_size: List[int] = field(default_factory=lambda: [128, 256])   # model input (H, W)
    gap: List[int] = field(default_factory=lambda: [1, 3])              # frame gap k, range
    eval_gap: int = 1
    clip_length: int = 2
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    # Unlabeled video (distillation only): the dataset's own video frames (camvid: sequences/,
    # cityscapes: leftImg8bit_sequence and train_extra), and recorded drives, one image topic
    # read from each.
    unlabeled_video: bool = False
    unlabeled_bags: List[str] = field(default_factory=list)
    unlabeled_topic: Optional[str] = None
    unlabeled_ratio: float = 1.0            # unlabeled pairs per labeled pair in a batch
    labels: Optional[str] = None            # a label store (stkd label) of the unlabeled video
    # Decoded bag frames (JPEG packs named by drive digest and size), shared by stkd label
    # and stkd distill; default: $XDG_CACHE_HOME/stkd_ros/frames (~/.cache/stkd_ros/frames).
    frame_cache: Optional[str] = None

    def __post_init__(self):
        _one_of('data.dataset', self.dataset, DATASETS, 'dataset')
        _one_of('data.camvid_labels', self.camvid_labels, (11, 32), 'label set')
        if self.unlabeled_video and self.dataset == 'synthetic':
            raise ConfigError('config: data.unlabeled_video: the synthetic world has streets '
                              'of unlabeled video of its own; set data.synthetic.'
                              'unlabeled_clips')
        if self.unlabeled_bags and not self.unlabeled_topic:
            raise ConfigError('config: data.unlabeled_topic: name the image topic to read '
                              'from the unlabeled bags')
        if not self.unlabeled_ratio > 0:
            raise ConfigError(f'config: data.unlabeled_ratio: expected a share above 0, got '
                              f'{self.unlabeled_ratio}')


@dataclass
class ModelConfig:
    arch: str = 'lraspp_mobilenetv3'
    args: Dict[str, Any] = field(default_factory=dict)   # the constructor's keyword arguments


@dataclass
class TeacherConfig(ModelConfig):
    """
    The teacher's model, and the precision of its forward where it labels.

    Where it labels: `stkd distill`'s online targets and `stkd label`'s store
    (stkd_ros/teacher_precision.py).

    ``auto`` (the default) is bf16 where the device computes it natively, else fp32
    (emulated bf16 is slower than fp32). On the protocol's trained teacher bf16 kept the
    labels: `stkd label`'s classes equal on 99.96% of pixels of 240 frames, label mIoU 0.6082
    in both (bench/results/teacher_labels.json; one pass, 48 frames: 99.94%, 0.6637 against
    0.6635), in 0.80x fp32's CPU time per frame (0.241 against 0.299 s, one thread; 0.161
    with ``label.batch`` 8). The precision used is recorded: in a run's config.yaml and model
    file, in a store's manifest.
    """

    precision: str = 'auto'                 # auto | fp32 | bf16

    def __post_init__(self):
        _one_of('teacher.precision', self.precision, TEACHER_PRECISIONS, 'precision')


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 8
    optimizer: str = 'sgd'                  # sgd | adamw
    lr: float = 0.01
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_steps: int = 20
    poly_power: float = 0.9
    aux_weight: float = 0.4                 # teacher: weight of each branch's own loss
    eval_every: int = 100
    log_every: int = 10
    checkpoint_every: int = 50
    amp: bool = True                        # on CUDA only
    torch_compile: bool = False
    seed: int = 0
    workers: int = 2
    device: str = 'auto'                    # auto | cpu | cuda | cuda:N

    def __post_init__(self):
        _one_of('train.optimizer', self.optimizer, OPTIMIZERS, 'optimizer')
        if not (self.device in ('auto', 'cpu', 'cuda') or self.device.startswith('cuda:')
                and self.device[5:].isdigit()):
            raise ConfigError(f'config: train.device: unknown device {self.device!r}; expected '
                              f'auto, cpu, cuda or cuda:N')


@dataclass
class DistillWeights:
    """
    Loss weights of `stkd distill`; 0 switches a term off.

    The defaults are the recipe protocol v2's rule picked (experiments/best_student.py,
    docs/results.md): cross-entropy on the labeled frames, and on the unlabeled video the
    teacher's classes of each view, computed online, as hard targets (Naive-Student, Chen et
    al. ECCV 2020). It beat labels alone on accuracy and on flicker. With a label store
    (``data.labels``, `stkd label`) the classes come from it instead, labeled once and
    offline: steps without a teacher pass, and students 0.005 mIoU less accurate at the same
    flicker. The other terms traded accuracy for stability.

    Weights of the other terms when switched on (``FULL_METHOD``, the steadiest recipe
    measured): pixel-wise KD 1 at temperature 1 as in CIRKD (Yang et al. CVPR 2022); pair-wise
    1 and adversarial 0.1 as in SKD (Liu et al. CVPR 2019, their released training script);
    the temporal term 3, chosen among 1, 3 and 10 on the tuning streets (10 gave up the
    accuracy distillation had added). Measured and removed (docs/history.md): channel-wise KD,
    the teacher's branches as extra targets, soft targets pooled by a stride.
    """

    #: The full method (SKD's and CIRKD's terms, the temporal ones, no pseudo-labels): the
    #: steadiest recipe measured, and less accurate than the default (docs/results.md).
    FULL_METHOD = MappingProxyType({'pseudo_label': 0.0, 'pixel': 1.0, 'pairwise': 1.0,
                                    'temporal': 3.0, 'temporal_kd': 1.0, 'adversarial': 0.1})

    ce: float = 1.0                         # cross-entropy on labeled frames
    pseudo_label: float = 1.0               # cross-entropy to the teacher's classes on
    #                                         frames without labels (store or online)
    pixel: float = 0.0                      # KL to the teacher's fused prediction
    pairwise: float = 0.0                   # affinity matching with the fused features
    temporal: float = 0.0                   # motion-guided consistency (student, t vs t+k)
    temporal_kd: float = 0.0                # inter-frame relation matched to the teacher
    adversarial: float = 0.0                # student's GAN loss (hinge)

    def __post_init__(self):
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ConfigError(f'config: distill.weights.{f.name}: expected a weight of 0 '
                                  f'or more, got {getattr(self, f.name)}')


@dataclass
class DiscriminatorConfig:
    """The discriminator's Adam rate; it decays with the student's schedule, as in SKD."""

    lr: float = 0.0004

    def __post_init__(self):
        if not self.lr > 0:
            raise ConfigError(f'config: distill.discriminator.lr: expected a rate above 0, '
                              f'got {self.lr}')


@dataclass
class DistillFlowConfig:
    """Where the temporal terms get their flow, and which pixels they trust."""

    method: str = 'dis'                     # dis | farneback | raft | ground_truth
    args: Dict[str, Any] = field(default_factory=dict)
    cache: Optional[str] = None             # default: <out>/flow_cache
    photometric_threshold: float = 0.1      # occlusion test for the temporal loss

    def __post_init__(self):
        _one_of('distill.flow.method', self.method, sorted(FLOW_METHODS), 'flow method')
        if not self.photometric_threshold > 0:
            raise ConfigError(f'config: distill.flow.photometric_threshold: expected a value '
                              f'above 0, got {self.photometric_threshold}')


@dataclass
class DistillConfig:
    """Settings of `stkd distill`: loss weights, soft targets, discriminator, flow."""

    weights: DistillWeights = field(default_factory=DistillWeights)
    temperature: float = 1.0                # softening of pixel-wise KD
    # With a label store (data.labels): store classes below this confidence teach nothing.
    pseudo_label_confidence: float = 0.0
    # Where the temporal term pulls: everywhere visible (none), or only where the label store
    # (with one; without, the teacher's online view) is at least gate_confidence sure of
    # frame t (confidence) or its classes of t and t+k agree along the flow (agreement).
    temporal_gate: str = 'none'
    gate_confidence: float = 0.9
    # Online hard labels of frame t from the teacher's views of t and t+k, their
    # probabilities summed along the flow on the pixels both frames see
    # (training/teacher_along_flow.py); t+k keeps its own view.
    fuse_views: bool = False
    grid: List[int] = field(default_factory=lambda: [8, 16])   # pooled nodes (h, w)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    flow: DistillFlowConfig = field(default_factory=DistillFlowConfig)

    def __post_init__(self):
        if not self.temperature > 0:
            raise ConfigError(f'config: distill.temperature: expected a value above 0, got '
                              f'{self.temperature}')
        _one_of('distill.temporal_gate', self.temporal_gate, TEMPORAL_GATES, 'gate')
        for key in ('pseudo_label_confidence', 'gate_confidence'):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f'config: distill.{key}: expected a confidence in [0, 1], '
                                  f'got {getattr(self, key)}')
        if len(self.grid) != 2 or min(self.grid) < 1:
            raise ConfigError(f'config: distill.grid: expected two node counts [h, w] of 1 or '
                              f'more, got {self.grid}')


@dataclass
class EvalConfig:
    """
    Held-out scoring: the split, at most ``max_clips`` clips, and the flow of TC and flicker.

    ``flow`` with ``flow_args`` (e.g. ``{preset: medium}``), on frames at most
    ``flow_max_side`` pixels wide or high (None: full size); ``ground_truth`` is the synthetic
    world's exact flow (stkd_ros/flow/pairs.py says which occlusion check goes with which).
    """

    split: str = 'val'                      # val (reported) | tune (for choosing settings)
    flow: str = 'dis'                       # dis | farneback | raft | ground_truth
    flow_args: Dict[str, Any] = field(default_factory=dict)
    flow_max_side: Optional[int] = None
    max_clips: Optional[int] = None

    def __post_init__(self):
        _one_of('evaluation.split', self.split, SPLITS, 'split')
        _one_of('evaluation.flow', self.flow, sorted(FLOW_METHODS), 'flow method')


@dataclass
class LabelConfig:
    """
    How `stkd label` has the teacher label unlabeled video (stkd_ros/labeling).

    Test-time augmentation: one pass per scale of the model's input size, each also
    mirrored with ``flip``; their softmax probabilities are averaged at the frame's size.
    Temporal fusion: frame t's probabilities averaged with those of frames t-r..t+r warped
    to t along the flow, where the flow passes the forward-backward occlusion check.
    ``fusion_flow: ground_truth`` is the synthetic world's exact flow (with a photometric
    check): an oracle, for measurement only, and the store says so.

    Defaults from experiments/label_quality.py (the protocol's teacher, 600 frames of 20
    never-labeled streets, experiments/results/label_quality.json): four scales reached
    label mIoU 0.6195 against 0.6021 for one pass; flip added nothing on top (0.6194), and
    DIS fusion of t-2..t+2 added 0.003 to one pass but took 0.002 off the four scales.
    """

    #: Flow that fusion may use (not a field): ground_truth is the synthetic world's, an oracle.
    FLOWS = ('dis', 'raft', 'ground_truth')

    scales: List[float] = field(default_factory=lambda: [0.75, 1.0, 1.25, 1.5])
    flip: bool = False
    fusion_radius: int = 0                  # r neighbours each side; 0 switches fusion off
    fusion_flow: str = 'dis'                # dis | raft | ground_truth (oracle)
    fusion_flow_args: Dict[str, Any] = field(default_factory=dict)   # e.g. RAFT's weights
    # Frames of a sequence per teacher call: how fast, not what (labeling/labeler.py). 8:
    # the least CPU time per frame among 1, 4, 8 and 16 (bench/teacher_labels.py, one thread).
    batch: int = 8

    def __post_init__(self):
        if self.batch < 1:
            raise ConfigError(f'config: label.batch: expected 1 or more frames, got '
                              f'{self.batch}')
        if not self.scales or min(self.scales) <= 0 or len(set(self.scales)) != len(self.scales):
            raise ConfigError(f'config: label.scales: expected distinct scales above 0, got '
                              f'{self.scales}')
        if self.fusion_radius < 0:
            raise ConfigError(f'config: label.fusion_radius: expected 0 (off) or more frames, '
                              f'got {self.fusion_radius}')
        if self.fusion_flow not in self.FLOWS:
            raise ConfigError(f'config: label.fusion_flow: expected one of '
                              f'{", ".join(self.FLOWS)}, got {self.fusion_flow!r}')


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig('teacher',
                                                                         {'size': 'tiny'}))
    student: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    label: LabelConfig = field(default_factory=LabelConfig)

    def to_dict(self) -> dict:
        return asdict(self)


def _check(value, hint, key: str):
    """Return ``value`` converted to ``hint`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(hint)
    if is_dataclass(hint):
        return _build(hint, value, key)
    if origin is typing.Union:   # Optional[X]
        if value is None:
            return None
        return _check(value, [a for a in typing.get_args(hint) if a is not type(None)][0], key)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'config: {key}: expected a list, got {value!r}')
        (item,) = typing.get_args(hint)
        return [_check(v, item, f'{key}[{i}]') for i, v in enumerate(value)]
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f'config: {key}: expected a mapping, got {value!r}')
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f'config: {key}: expected true or false, got {value!r}')
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f'config: {key}: expected {hint.__name__}, got {value!r}')
    return value


def _build(cls, data, prefix: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f'config: {prefix or "top level"}: expected a mapping, got {data!r}')
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            where = f'{prefix}.{key}' if prefix else key
            raise ConfigError(f'config: {where}: unknown key (known: {", ".join(sorted(known))})')
    default = cls()
    kwargs = {}
    for f in fields(cls):
        key = f'{prefix}.{f.name}' if prefix else f.name
        if f.name in data:
            kwargs[f.name] = _check(data[f.name], hints[f.name], key)
        else:
            kwargs[f.name] = getattr(default, f.name)
    return cls(**kwargs)


def apply_override(data: dict, assignment: str) -> dict:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a nested dict."""
    if '=' not in assignment:
        raise ConfigError(f'config: override {assignment!r} is not key=value')
    key, text = assignment.split('=', 1)
    value = yaml.safe_load(text) if text else None
    parts = key.strip().split('.')
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f'config: override {key}: {part} is not a section')
    node[parts[-1]] = value
    return data


def load_config(path=None, overrides=()) -> Config:
    """Read a YAML config (or the defaults), apply overrides, and validate the result."""
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'config file not found: {path}')
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f'config: {path} is not valid YAML: '
                              f'{str(exc).splitlines()[0]}') from None
    for assignment in overrides:
        data = apply_override(data, assignment)
    return config_from_dict(data)


def config_from_dict(data: dict) -> Config:
    """Validate a config dict (a YAML file's content, or ``Config.to_dict()``)."""
    return _build(Config, data, '')


def save_config(config: Config, path):
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
