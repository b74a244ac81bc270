"""
The label store: images a person opens with any viewer, beside a small JSON manifest.

Layout (as Cityscapes ships one PNG per frame in a predictable tree)::

    STORE/manifest.json                      what made the labels, and which frames it holds
    STORE/labels/<sequence>/<t:06d>.png      uint8 class ids (255: none)
    STORE/confidence/<sequence>/<t:06d>.png  uint8: the fused top-class probability x 255
    STORE/quality.json                       the labels against ground truth, where known

The manifest's keys: ``format`` and ``version``; ``oracle`` (true where the labels used
knowledge no real recording has: exact flow, or the ground truth itself);
``teacher_sha256`` and ``teacher_path``; ``teacher_precision`` (its forward's, 'fp32' or
'bf16'; None without a teacher; a teacher's store made before it was recorded ran fp32);
``classes``; ``source`` (the video's identity, :func:`source_identity`); ``settings`` (the
label section of the config); ``ignore_index``;
``sequences`` ({name: {frames, size [h, w]}}). Every file is written whole (a temporary file,
then a rename), so a killed labeling leaves only whole frames and resumes at the first missing
one, and shards writing into one store never see each other's half-written files.
"""

import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

import cv2
import numpy as np
from stkd_ros.atomic_write import temporary_beside
from stkd_ros.data.classes import CAMVID_CLASSES, IGNORE_INDEX
from stkd_ros.data.image_io import read_label
from stkd_ros.data.unlabeled import unlabeled_streets
from stkd_ros.errors import InputError
from stkd_ros.labeling.identity import CARRIED_TRUTH, GROUND_TRUTH, source_identity
from stkd_ros.labeling.sources import video_sequences
from tqdm import tqdm

log = logging.getLogger(__name__)

FORMAT = 'stkd_ros.labels'
VERSION = 1
MANIFEST = 'manifest.json'
QUALITY = 'quality.json'
LABELS, CONFIDENCE = 'labels', 'confidence'
REVIEW = 'review'
#: What a store folder may hold; anything else means --out points at something else. Stores
#: made before bag frames moved to the shared frame cache hold a frame_cache/ of their own.
_OWN = {MANIFEST, QUALITY, LABELS, CONFIDENCE, REVIEW, 'frame_cache'}
#: Manifest entries that must agree before a run adds frames to an existing store.
_IDENTITY = (('format', 'format'), ('version', 'format version'),
             ('teacher_sha256', 'teacher (SHA-256)'),
             ('teacher_precision', 'teacher precision (teacher.precision)'),
             ('source', 'video source'),
             ('settings', 'label settings'), ('classes', 'classes'))
#: Label settings that say how fast a store is made, not what it holds (``_identity``).
_HOW_FAST = ('batch',)


class StoreError(InputError):
    """A label store that is missing, incomplete, or made from something else."""


def frame_path(root, kind: str, sequence: str, t: int) -> Path:
    """``root/kind/sequence/t.png`` with kind ``labels`` or ``confidence``."""
    return Path(root) / kind / sequence / f'{t:06d}.png'


def _write_atomic(path: Path, write):
    tmp = temporary_beside(path)
    write(tmp)
    os.replace(tmp, path)


def _write_png(path: Path, image: np.ndarray):
    def write(tmp):
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f'cannot write {tmp}')
    _write_atomic(path, write)


def write_json(path, data: dict):
    _write_atomic(Path(path), lambda tmp: tmp.write_text(json.dumps(data, indent=1) + '\n'))


def write_frame(root, sequence: str, t: int, labels: np.ndarray, confidence: np.ndarray):
    """Write frame t's class map and confidence map, each whole."""
    for kind, image in ((CONFIDENCE, confidence), (LABELS, labels)):
        path = frame_path(root, kind, sequence, t)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_png(path, np.ascontiguousarray(image, np.uint8))


def done_frames(root, sequence: str) -> set:
    """Frames of ``sequence`` that have both files."""
    found = []
    for kind in (LABELS, CONFIDENCE):
        folder = Path(root) / kind / sequence
        names = os.listdir(folder) if folder.is_dir() else []
        found.append({int(n[:6]) for n in names if len(n) == 10 and n[:6].isdigit()
                      and n.endswith('.png')})
    return found[0] & found[1]


def labeled_frames(root, sequence: str, frame_at: Callable[[int], np.ndarray]) -> Iterator:
    """
    Yield (frame, labels, confidence) of each frame of ``sequence`` that has both maps, in order.

    For review, so a store still being written will do. ``frame_at(t)`` reads frame t from the
    store's source (HxWx3 uint8 RGB).
    """
    numbers = sorted(done_frames(root, sequence))
    if not numbers:
        raise StoreError(f'{root} has no labeled frame of sequence {sequence!r} (looked for '
                         f'{LABELS}/{sequence}/NNNNNN.png and {CONFIDENCE}/{sequence}/...)')
    for t in numbers:
        yield (frame_at(t), read_label(frame_path(root, LABELS, sequence, t)),
               read_label(frame_path(root, CONFIDENCE, sequence, t)))


def clear_partial(root, sequence: str):
    """Remove temporary files a killed run left in a sequence's folders."""
    for kind in (LABELS, CONFIDENCE):
        for tmp in (Path(root) / kind / sequence).glob('*.tmp.png'):
            tmp.unlink(missing_ok=True)


def new_manifest(*, teacher_sha256: str, teacher_path: Optional[str], classes, source: str,
                 settings: dict, oracle: bool, sequences,
                 teacher_precision: Optional[str] = 'fp32') -> dict:
    """
    Return the manifest of a store of ``sequences`` (labeling.sources.Sequence).

    ``teacher_precision``: what the teacher's forward ran at (TeacherPasses.precision).
    """
    return {'format': FORMAT, 'version': VERSION, 'oracle': bool(oracle),
            'teacher_sha256': teacher_sha256, 'teacher_path': teacher_path,
            'teacher_precision': teacher_precision,
            'classes': list(classes), 'source': source,
            # Through JSON once, so that it compares equal to what a later run reads back.
            'settings': json.loads(json.dumps(settings)), 'ignore_index': IGNORE_INDEX,
            'sequences': {s.name: {'frames': s.frames, 'size': list(s.size())}
                          for s in sequences}}


def check_out(root):
    """Refuse an --out that holds something other than a label store."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f'{root} is a file, not a label store folder')
    if root.is_dir() and not (root / MANIFEST).is_file():
        foreign = sorted(n for n in os.listdir(root) if n not in _OWN and '.tmp' not in n)
        if foreign:
            raise StoreError(f'{root} is not a label store (no {MANIFEST}, holds '
                             f'{foreign[0]}); choose another --out')


def read_manifest(root) -> Optional[dict]:
    """Return the manifest of ``root``, or None where there is none."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StoreError(f'{path} is not valid JSON') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise StoreError(f'{path} is not a label store manifest (format '
                         f'{manifest.get("format") if isinstance(manifest, dict) else None!r}, '
                         f'expected {FORMAT!r})')
    if 'teacher_precision' not in manifest:
        # Made before it was recorded: a teacher's labels ran in fp32; the ground truth and
        # the carried truth had no teacher.
        no_teacher = manifest.get('teacher_sha256') in (GROUND_TRUTH, CARRIED_TRUTH)
        manifest['teacher_precision'] = None if no_teacher else 'fp32'
    return manifest


def prepare_store(root, manifest: dict) -> dict:
    """
    Create the store, or check that the one there was made the same way; return its manifest.

    An existing store keeps its sequences and gains those of ``manifest`` it lacks (a config
    with more streets of the same world extends it).
    """
    root = Path(root)
    check_out(root)
    old = read_manifest(root)
    if old is not None:
        for key, what in _IDENTITY:
            there, here = _identity(old, key), _identity(manifest, key)
            if there != here:
                raise StoreError(
                    f'{root} holds labels made with another {what} '
                    f'({_difference(there, here)}); label into another --out, or delete it '
                    f'to start over')
        merged = {**old, 'sequences': {**old['sequences'], **{
            k: v for k, v in manifest['sequences'].items() if k not in old['sequences']}}}
        if merged == old:
            return old
        manifest = merged
        (root / QUALITY).unlink(missing_ok=True)     # it scored fewer sequences
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / MANIFEST, manifest)
    return manifest


def _identity(manifest: dict, key: str):
    """
    Return the manifest's ``key`` as stores are compared by it (settings without ``batch``).

    The batch size changes a frame's probabilities in their last bits only (a confidence
    byte on fewer than one pixel in 10^5, bench/teacher_labels.py), as another CPU's kernels do.
    """
    value = manifest.get(key)
    if key == 'settings' and isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _HOW_FAST}
    return value


def _difference(there, here) -> str:
    """'X there, Y here', for the first key that differs when both are mappings."""
    if isinstance(there, dict) and isinstance(here, dict):
        key = next(k for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k))
        return f'{key}: {_short(there.get(key))} there, {_short(here.get(key))} here'
    return f'{_short(there)} there, {_short(here)} here'


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + '...'


def first_missing(root, manifest: dict):
    """(sequence, t, frames missing in all) of the first frame without both files, or None."""
    first, missing = None, 0
    for name, entry in manifest['sequences'].items():
        lacking = sorted(set(range(entry['frames'])) - done_frames(root, name))
        if lacking and first is None:
            first = (name, lacking[0])
        missing += len(lacking)
    return None if first is None else (*first, missing)


class LabelStore:
    """
    A complete label store, for reading: ``read(sequence, t)`` -> (labels, confidence).

    ``manifest`` is the manifest as written; ``teacher_sha256`` and ``source`` identify the
    teacher and the video, so a training run can refuse a store made from something else.
    """

    def __init__(self, root, manifest: dict):
        self.root, self.manifest = Path(root), manifest

    @classmethod
    def open(cls, path) -> 'LabelStore':   # noqa: A003 (the name training calls)
        """Open a complete store; a one-line StoreError if it is missing or incomplete."""
        root = Path(path)
        if not root.is_dir():
            raise StoreError(f'label store not found: {root}')
        manifest = read_manifest(root)
        if manifest is None:
            raise StoreError(f'{root} is not a label store (no {MANIFEST})')
        if manifest.get('version') != VERSION:
            raise StoreError(f'{root}: label store version {manifest.get("version")}; this '
                             f'version reads {VERSION}')
        missing = first_missing(root, manifest)
        if missing is not None:
            sequence, t, count = missing
            command = ('propagate-labels' if manifest['teacher_sha256'] == CARRIED_TRUTH
                       else 'label')
            how = ('call write_truth_store again' if manifest['teacher_sha256'] == GROUND_TRUTH
                   else f'run `stkd {command}` again with the same arguments, on every shard')
            raise StoreError(f'label store {root} is incomplete: {sequence} frame {t} has no '
                             f'labels ({count} frames missing); to finish it, {how} (it '
                             f'resumes)')
        return cls(root, manifest)

    @property
    def teacher_sha256(self) -> str:
        return self.manifest['teacher_sha256']

    @property
    def teacher_precision(self) -> Optional[str]:
        """'fp32' or 'bf16': the teacher's forward's; None without a teacher (the truth)."""
        return self.manifest['teacher_precision']

    @property
    def source(self) -> str:
        return self.manifest['source']

    @property
    def classes(self) -> list:
        return self.manifest['classes']

    @property
    def oracle(self) -> bool:
        return self.manifest['oracle']

    @property
    def sequences(self) -> Dict[str, dict]:
        """{name: {'frames': count, 'size': [h, w]}}, in labeling order."""
        return self.manifest['sequences']

    @property
    def quality(self) -> Optional[dict]:
        """Return the quality report (quality.json) where ground truth existed, else None."""
        path = self.root / QUALITY
        return json.loads(path.read_text()) if path.is_file() else None

    def read(self, sequence: str, t: int) -> tuple:
        """(class ids, confidence x 255) of frame t of ``sequence``: two (H, W) uint8 arrays."""
        entry = self.sequences.get(sequence)
        if entry is None:
            raise StoreError(f'label store {self.root} has no sequence {sequence!r} (it holds '
                             f'{len(self.sequences)}, e.g. {next(iter(self.sequences), None)})')
        if not 0 <= t < entry['frames']:
            raise StoreError(f'label store {self.root}: {sequence} has frames 0..'
                             f'{entry["frames"] - 1}, not {t}')
        out = []
        for kind in (LABELS, CONFIDENCE):
            path = frame_path(self.root, kind, sequence, t)
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None or image.ndim != 2:
                raise StoreError(f'label store {self.root}: cannot read {path}')
            out.append(image)
        return tuple(out)


def write_truth_store(out, data_cfg, *, progress: bool = False) -> LabelStore:
    """
    Write a store of the synthetic world's true labels for its never-labeled streets.

    The oracle a teacher's labels are measured against: labels are the world's ground truth
    (255 on void surfaces), confidence 255, ``teacher_sha256`` 'ground_truth', ``oracle``
    true; ``source`` is what `stkd label` writes for the same DataConfig, so training reads it
    through the same code path. Resumes like `stkd label`.
    """
    if data_cfg.dataset != 'synthetic' or not data_cfg.synthetic.unlabeled_clips:
        raise StoreError("a ground-truth store needs the synthetic world's unlabeled streets "
                         '(data.dataset: synthetic, data.synthetic.unlabeled_clips > 0)')
    if data_cfg.unlabeled_bags:
        raise StoreError('a ground-truth store holds the synthetic world alone; bags have no '
                         'ground truth (leave data.unlabeled_bags empty)')
    sequences = video_sequences(unlabeled_streets(data_cfg))
    manifest = prepare_store(out, new_manifest(
        teacher_sha256=GROUND_TRUTH, teacher_path=None, classes=CAMVID_CLASSES,
        source=source_identity(data_cfg), settings={'labels': GROUND_TRUTH}, oracle=True,
        sequences=sequences, teacher_precision=None))
    todo = [(s, sorted(set(range(s.frames)) - done_frames(out, s.name))) for s in sequences]
    with tqdm(total=sum(len(ts) for _, ts in todo), desc='truth store', unit='frame',
              disable=None if progress else True) as bar:
        for sequence, times in todo:
            clear_partial(out, sequence.name)
            for t in times:
                labels = sequence.read(t)[1]
                write_frame(out, sequence.name, t, labels, np.full_like(labels, 255))
                bar.update()
    log.info('ground-truth store %s: %d sequences', out, len(manifest['sequences']))
    return LabelStore.open(out)
