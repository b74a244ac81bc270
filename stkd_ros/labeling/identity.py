"""
What a label store was made from, as strings a later run compares before it trusts the store.

The teacher is named by its file's SHA-256. The video source by a string that tells worlds,
datasets and drives apart: the synthetic world's settings, renderer version and split seed;
a dataset's folder name and frame count (its labeled video's also a digest of which frames
are annotated); a drive's name (the one its sequence has: ``data.bag_video.drive_names``),
topic, frame count and a digest of its content (the recording's start and end times and its
first frame's message): two drives of one name and frame count differ in it, and a drive
copied to another machine or folder keeps it, so a store labeled on one cluster serves
training on another; and the training size its frames and labels are kept at
(``data.eval_size``).
"""

import hashlib
from pathlib import Path
from typing import Iterable, Optional

from stkd_ros.errors import InputError

#: What a store made from the synthetic world's labels (not a teacher) names as its teacher.
GROUND_TRUTH = 'ground_truth'
#: What a store of labeled frames' truth carried along the flow names as its teacher.
CARRIED_TRUTH = 'carried_truth'


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes, read in chunks (teacher files are tens of megabytes)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def source_identity(data_cfg, bags: Iterable = (), topic: Optional[str] = None) -> str:
    """
    Name the unlabeled video of ``data_cfg`` (a DataConfig) and of ``bags``, as stores do.

    The parts follow the order in which `stkd label` walks them: the synthetic world's
    never-labeled streets, the dataset's video (``data.unlabeled_video``), then the bags of
    ``data.unlabeled_bags`` followed by ``bags`` not already among them. The number of
    synthetic streets is left out: a store of the first streets of a world serves a run that
    uses as many or fewer, and the manifest lists which streets it holds.
    """
    parts = []
    if data_cfg.dataset == 'synthetic' and data_cfg.synthetic.unlabeled_clips:
        parts.append(_synthetic(data_cfg.synthetic))
    if data_cfg.unlabeled_video and data_cfg.dataset in ('camvid', 'cityscapes'):
        parts.append(_dataset_video(data_cfg))
    from stkd_ros.data.unlabeled import with_bags
    every_bag = with_bags(data_cfg.unlabeled_bags, bags)
    topic = topic or data_cfg.unlabeled_topic
    if every_bag:
        from stkd_ros.data.bag_video import drive_names
        parts += [_bag(bag, name, topic, data_cfg.eval_size)
                  for bag, name in zip(every_bag, drive_names(every_bag))]
    if not parts:
        raise InputError('the config has no unlabeled video: set data.synthetic.unlabeled_clips '
                         '(synthetic), data.unlabeled_video: true (camvid, cityscapes), or give '
                         'bags and their image topic')
    return ' + '.join(parts)


def labeled_video_identity(data_cfg) -> str:
    """
    Name the labeled video of ``data_cfg``, as a store of carried labels does.

    The synthetic world's training streets with the frames its labels are on
    (``label_every``), or the dataset's video with a digest of its annotated frames (each
    sequence's labeled ones): an annotation added or removed moves where chains start, so a
    store carried before is of other labels.
    """
    if data_cfg.dataset == 'synthetic':
        s = data_cfg.synthetic
        return _synthetic(s, 'train')[:-1] + f',label_every={s.label_every})'
    from stkd_ros.labeling.labeled_video import labeled_sequences
    pairs = sorted((s.name, k) for s in labeled_sequences(data_cfg) for k in s.labeled)
    labeled = hashlib.sha1(repr(pairs).encode()).hexdigest()[:12]
    return _dataset_video(data_cfg)[:-1] + f',labeled={labeled})'


def _synthetic(s, split: str = 'unlabeled') -> str:
    from stkd_ros.data.render_cache import RENDER_VERSION
    from stkd_ros.data.synthetic import SyntheticClips
    split_seed = s.seed + SyntheticClips.SPLIT_SEED[split]
    return (f'synthetic(render=v{RENDER_VERSION},height={s.height},width={s.width},'
            f'frames={s.frames},difficulty={s.difficulty},seed={s.seed},split={split},'
            f'split_seed={split_seed})')


def _dataset_video(data_cfg) -> str:
    if data_cfg.root is None:
        raise InputError(f'data.root must name the {data_cfg.dataset} directory')
    if data_cfg.dataset == 'camvid':
        from stkd_ros.data.camvid import camvid_video as video
    else:
        from stkd_ros.data.cityscapes import cityscapes_video as video
    frames = sum(n for _, n in video(data_cfg.root, clip_length=1).list_sequences())
    return f'{data_cfg.dataset}_video(root={Path(data_cfg.root).resolve().name},frames={frames})'


def _bag(bag, name: str, topic: Optional[str], size) -> str:
    """Name a drive; ``size`` is the training size its frames, and so its labels, have."""
    from stkd_ros.bag.reader import connections_for, open_bag
    if not topic:
        raise InputError(f'bag {bag}: name the image topic to read from it')
    with open_bag(bag) as reader:
        connections = connections_for(reader, [topic])
        frames = sum(c.msgcount for c in connections)
        content = hashlib.sha1(repr((reader.start_time, reader.end_time, frames)).encode())
        for _, _, raw in reader.messages(connections=connections):
            content.update(bytes(raw))   # the first frame: bytes of the scene, not of a file
            break
    return (f'bag(name={name},topic={topic},frames={frames},content={content.hexdigest()[:16]},'
            f'size={size[0]}x{size[1]})')
