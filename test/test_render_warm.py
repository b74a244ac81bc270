"""Warming the render cache: every view the synthetic world renders, whatever else is there."""

from cli_helpers import synth_bag
from stkd_ros.config import load_config
from stkd_ros.data.render_warm import warm_render_cache

TOPIC = '/camera/image_raw'


def _data(tmp_path, unlabeled_clips: int, bags=()):
    """Return a tiny world with a render cache, its never-labeled streets and ``bags``."""
    return load_config(None, [
        'data.synthetic.height=32', 'data.synthetic.width=64', 'data.synthetic.frames=4',
        'data.synthetic.train_clips=1', 'data.synthetic.val_clips=1',
        'data.synthetic.tune_clips=1', 'data.synthetic.keys_per_clip=1',
        f'data.synthetic.unlabeled_clips={unlabeled_clips}',
        f'data.synthetic.render_cache={tmp_path / "render"}',
        f'data.frame_cache={tmp_path / "frames"}',
        f'data.unlabeled_bags={list(map(str, bags))}', f'data.unlabeled_topic={TOPIC}']).data


def test_recorded_drives_beside_the_world_are_left_to_their_own_cache(tmp_path):
    """A drive is no synthetic world: warming renders the world's views and decodes no drive."""
    drive = synth_bag(tmp_path / 'drive', frames=4, size='32x64')
    for unlabeled in (0, 1):
        expected = warm_render_cache(_data(tmp_path / f'world{unlabeled}', unlabeled),
                                     eval_split='val', workers=1)
        # The drive alone (a BagVideo), or beside the never-labeled street (a ConcatDataset).
        data = _data(tmp_path / f'with_drive{unlabeled}', unlabeled, [drive])
        assert warm_render_cache(data, eval_split='val', workers=1) == expected > 0
        assert not list((tmp_path / f'with_drive{unlabeled}' / 'frames').rglob('*.jpgs'))
        assert warm_render_cache(data, eval_split='val', workers=1) == 0   # all cached now
