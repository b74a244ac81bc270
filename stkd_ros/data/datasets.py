"""The labeled dataset a config names, for a split: the synthetic world, CamVid or Cityscapes."""

from dataclasses import fields

from stkd_ros.errors import InputError


def synthetic_world(s):
    """Return the world settings alone (a SyntheticConfig) of a SyntheticDataConfig."""
    from stkd_ros.data.synthetic import SyntheticConfig
    return SyntheticConfig(**{f.name: getattr(s, f.name) for f in fields(SyntheticConfig)})


def build_clips(cfg, split: str, *, clip_length: int, gap):
    """Build the dataset of ``cfg`` (a DataConfig) for ``split`` (train, val or tune): Clips."""
    if cfg.dataset == 'synthetic':
        from stkd_ros.data.synthetic import SyntheticClips
        s = cfg.synthetic
        clips = {'train': s.train_clips, 'val': s.val_clips, 'tune': s.tune_clips}[split]
        return SyntheticClips(synthetic_world(s), split=split, clips=clips, gap=gap,
                              clip_length=clip_length, keys_per_clip=s.keys_per_clip,
                              label_every=s.label_every, cache_dir=s.render_cache)
    if split == 'tune':
        raise InputError(f'evaluation.split: tune is a split of the synthetic world; for '
                         f'{cfg.dataset}, tune on a split of your own')
    if cfg.root is None:
        raise InputError(f'data.root must name the {cfg.dataset} directory')
    if cfg.dataset == 'camvid':
        from stkd_ros.data.camvid import CamVidClips
        return CamVidClips(cfg.root, split=split, labels=cfg.camvid_labels, gap=gap,
                           clip_length=clip_length)
    from stkd_ros.data.cityscapes import CityscapesClips
    return CityscapesClips(cfg.root, split=split, gap=gap, clip_length=clip_length)
