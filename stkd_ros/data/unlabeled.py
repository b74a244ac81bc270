"""
The unlabeled video a config names, as datasets of Clips whose labels are all 255.

That is the synthetic world's never-labeled streets, the video frames of CamVid or
Cityscapes (``data.unlabeled_video``), and recorded drives (``data.unlabeled_bags``).
Distillation trains on it and `stkd label` labels it: both build it here.
"""

import os

from stkd_ros.data.datasets import synthetic_world
import torch


def with_bags(config_bags, bags) -> list:
    """
    Return the config's bags (``data.unlabeled_bags``), then those of ``bags`` not among them.

    What `stkd label --bag` and `stkd distill --unlabeled-bag` both do: the command line adds
    drives to the config's, so the two commands given one config and the same bags learn
    from, and label, the same video. A bag named twice (also as ``dir`` and ``dir/``) counts
    once.
    """
    merged, seen = [], set()
    for bag in [str(b) for b in config_bags] + [str(b) for b in bags]:
        if os.path.abspath(bag) not in seen:
            seen.add(os.path.abspath(bag))
            merged.append(bag)
    return merged


def unlabeled_streets(cfg, *, clip_length: int = 1, gap=1):
    """Return the synthetic world's never-labeled streets of ``cfg``, as one source."""
    from stkd_ros.data.synthetic import SyntheticClips
    s = cfg.synthetic
    return SyntheticClips(synthetic_world(s), split='unlabeled', clips=s.unlabeled_clips,
                          gap=gap, clip_length=clip_length, keys_per_clip=s.keys_per_clip,
                          cache_dir=s.render_cache)


# The builders of each source; each returns a list of Clips datasets.
# Bag frames are kept at data.eval_size, the model's input: training scales and crops them
# from there, as it does the labeled frames. They are decoded at a drive's first read, into
# data.frame_cache or else the user's cache that every run shares (default_frame_cache).

def _streets(cfg, clip_length: int, gap):
    return [unlabeled_streets(cfg, clip_length=clip_length, gap=gap)]


def _camvid_video(cfg, clip_length: int, gap):
    from stkd_ros.data.camvid import camvid_video
    return [camvid_video(cfg.root, gap=gap, clip_length=clip_length)]


def _cityscapes_video(cfg, clip_length: int, gap):
    from stkd_ros.data.cityscapes import cityscapes_video
    return [cityscapes_video(cfg.root, gap=gap, clip_length=clip_length)]


def _recorded_drives(cfg, clip_length: int, gap):
    from stkd_ros.data.bag_video import BagVideo, default_frame_cache, drive_names
    cache, bags = cfg.frame_cache or default_frame_cache(), cfg.unlabeled_bags
    return [BagVideo(bag, cfg.unlabeled_topic, cache_dir=cache, size=cfg.eval_size, gap=gap,
                     clip_length=clip_length, name=name)
            for bag, name in zip(bags, drive_names(bags))]


#: Each source of unlabeled video: whether a config names it, and what builds its datasets.
#: One table, so that asking whether there is any video and building it cannot disagree.
UNLABELED_SOURCES = (
    (lambda cfg: cfg.dataset == 'synthetic' and cfg.synthetic.unlabeled_clips, _streets),
    (lambda cfg: cfg.dataset == 'camvid' and cfg.unlabeled_video, _camvid_video),
    (lambda cfg: cfg.dataset == 'cityscapes' and cfg.unlabeled_video, _cityscapes_video),
    (lambda cfg: cfg.unlabeled_bags, _recorded_drives),
)


def has_unlabeled_video(cfg) -> bool:
    """Whether ``cfg`` names unlabeled video (what :func:`build_unlabeled` builds)."""
    return any(names(cfg) for names, _ in UNLABELED_SOURCES)


def build_unlabeled(cfg, *, clip_length: int, gap):
    """
    Build the unlabeled video of ``cfg``: one dataset of Clips, or None when there is none.

    Nothing is decoded yet: a recorded drive's frames are, at the first read of one.
    """
    parts = [part for names, build in UNLABELED_SOURCES if names(cfg)
             for part in build(cfg, clip_length, gap)]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.utils.data.ConcatDataset(parts)
