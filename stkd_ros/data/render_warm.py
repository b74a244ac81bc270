"""
Every view a synthetic dataset can draw, rendered once into its render cache.

A full-method run on 400 unlabeled streets draws few views twice, so with an empty cache
nearly every frame it trains on is rendered inside a training step (a data worker then spends
most of a core rendering). Warming renders them all up front, on every core. It lives apart
from the renderer because the render cache is keyed by the renderer's source: code that only
enumerates views must not invalidate it.
"""

from stkd_ros.data.synthetic import SyntheticClips


def views(clips: SyntheticClips):
    """Yield every (clip index, start, gap) a sample of ``clips`` can take."""
    frames = clips.world.config.frames
    for index in range(clips.clips):
        if clips.split not in ('train', 'unlabeled'):
            gap = clips.gap.low
            last = frames - 1 - (clips.clip_length - 1) * gap
            starts = sorted({(key * last) // max(clips.keys_per_clip - 1, 1)
                             for key in range(clips.keys_per_clip)})
            yield from ((index, start, gap) for start in starts)
            continue
        for gap in range(clips.gap.low, clips.gap.high + 1):
            last = frames - 1 - max(clips.clip_length - 1, 1) * gap
            yield from ((index, t, gap) for t in clips.key_frames if t <= last)


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
    for index, start, gap in views(clips):
        if index % shards != shard:
            continue
        for t, flow_to in frames(clips, start, gap):
            if not world.cache.has(index, t, flow_to):
                world.frame(index, t, flow_to)
                rendered += 1
    return rendered
