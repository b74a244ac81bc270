"""
Every view a synthetic dataset can draw, rendered once into its render cache.

A full-method run on 400 unlabeled streets draws few views twice, so with an empty cache
nearly every frame it trains on is rendered inside a training step (a data worker then spends
most of a core rendering). Warming renders them all up front, on every core.
"""

from concurrent.futures import ProcessPoolExecutor

from stkd_ros.data.datasets import build_clips
from stkd_ros.data.synthetic import SyntheticClips
from stkd_ros.data.unlabeled import unlabeled_streets


def frames(clips: SyntheticClips, start: int, gap: int):
    """Return the (t, flow_to) of each frame of the view at ``start``, as ``clip`` renders."""
    times = [start + i * gap for i in range(clips.clip_length)]
    return [(t, times[i + 1] if i + 1 < len(times) else None) for i, t in enumerate(times)]


def warm(clips: SyntheticClips, shard: int = 0, shards: int = 1) -> int:
    """Render what is not cached of the views of every ``shards``-th clip from ``shard``."""
    world = clips.world
    if world.cache is None:
        return 0
    rendered = 0
    for index, start, gap in clips.views():
        if index % shards != shard:
            continue
        for t, flow_to in frames(clips, start, gap):
            if not world.cache.has(index, t, flow_to):
                world.frame(index, t, flow_to)
                rendered += 1
    return rendered


def _warm_job(job):
    return warm(*job)


def warm_all(datasets, workers: int) -> int:
    """Warm the render cache of every dataset, ``workers`` processes sharing the clips."""
    jobs = [(clips, shard, workers) for clips in datasets for shard in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_warm_job, jobs))


def warm_render_cache(cfg, *, eval_split: str, workers: int) -> int:
    """
    Render every view of the synthetic world of ``cfg`` into its render cache, in parallel.

    The views are every one that training (one- and two-frame runs) and scoring on
    ``eval_split`` can draw; ``workers`` processes share them. Returns how many frames were
    rendered (a cached one costs a file check). Of the unlabeled video only the world's
    never-labeled streets are rendered: recorded drives (``data.unlabeled_bags``) are decoded
    into the frame cache when first read.
    """
    if cfg.dataset != 'synthetic' or not cfg.synthetic.render_cache:
        return 0
    gap = tuple(cfg.gap)
    datasets = [build_clips(cfg, eval_split, clip_length=2, gap=cfg.eval_gap)]
    for length in (1, 2):
        datasets.append(build_clips(cfg, 'train', clip_length=length, gap=gap))
        if cfg.synthetic.unlabeled_clips:
            datasets.append(unlabeled_streets(cfg, clip_length=length, gap=gap))
    return warm_all(datasets, workers)
