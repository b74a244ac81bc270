"""
The unlabeled video as named sequences of frames, and the share of them one shard labels.

Every unlabeled source (the synthetic world's never-labeled streets, a dataset's video, a
bag) lists its sequences (``list_sequences``: name and frame count), gives their frame size
(``sequence_size``) and reads frame t of one (``sequence_frame``: the frame and its ground
truth, or None; ``sequence_truth``: the truth alone). A store names its folders
after these sequences, and a training Clip names its frames the same way (``Clip.sequence``,
``Clip.times``).
"""

from dataclasses import dataclass
import re
from typing import List, Mapping, Optional, Tuple

from stkd_ros.errors import InputError
from torch.utils.data import ConcatDataset

_SHARD = re.compile(r'^(\d+)/(\d+)$')


@dataclass(frozen=True)
class Sequence:
    """One sequence of a source: ``source.sequence_frame(name, t)`` reads its frames."""

    source: object
    name: str
    frames: int

    def read(self, t: int):
        """Frame ``t`` (H, W, 3 uint8 RGB) and its ground truth (H, W uint8) or None."""
        return self.source.sequence_frame(self.name, t)

    def truth(self, t: int):
        """Ground truth of frame ``t`` (H, W uint8), or None; the frame itself is not read."""
        return self.source.sequence_truth(self.name, t)

    def size(self) -> Tuple[int, int]:
        return tuple(self.source.sequence_size(self.name))


def video_sequences(dataset) -> List[Sequence]:
    """
    Every sequence of an unlabeled dataset (one source, or a ConcatDataset of several).

    Names must be unique across sources, since each names a folder of the store.
    """
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    sequences, seen = [], {}
    for part in parts:
        for name, frames in part.list_sequences():
            if name in seen:
                raise InputError(f'two unlabeled sequences are named {name!r} ({seen[name]} '
                                 f'and {type(part).__name__}); give each drive once')
            seen[name] = type(part).__name__
            sequences.append(Sequence(part, name, frames))
    return sequences


def parse_shard(text: str) -> Tuple[int, int]:
    """``'I/N'`` -> (I, N) with 0 <= I < N; anything else is a one-line error."""
    match = _SHARD.match(text.strip()) if isinstance(text, str) else None
    if match is None or not int(match[1]) < int(match[2]):
        raise InputError(f'--shard: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}')
    return int(match[1]), int(match[2])


def resolve_shard(shard: Optional[str], env: Mapping[str, str]) -> Tuple[int, int]:
    """
    Return this process's shard: ``--shard I/N``, or torchrun's ``RANK`` and ``WORLD_SIZE``.

    Without either it is the whole video (0/1); given both, they must agree.
    """
    launched = 'RANK' in env or 'WORLD_SIZE' in env
    if launched:
        text = f'{env.get("RANK", "?")}/{env.get("WORLD_SIZE", "?")}'
        match = _SHARD.match(text)
        if match is None or not int(match[1]) < int(match[2]):
            raise InputError(f'torchrun: RANK={env.get("RANK")} WORLD_SIZE='
                             f'{env.get("WORLD_SIZE")} is no shard (0 <= RANK < WORLD_SIZE)')
        ranked = int(match[1]), int(match[2])
    if shard is None:
        return ranked if launched else (0, 1)
    given = parse_shard(shard)
    if launched and given != ranked:
        raise InputError(f"--shard {shard} disagrees with torchrun's RANK={ranked[0]} "
                         f'WORLD_SIZE={ranked[1]}; give one or the other')
    return given


def shard_of(sequences: List[Sequence], index: int, count: int) -> List[Sequence]:
    """Sequences i with i % count == index: shards are disjoint and cover every sequence."""
    return [s for i, s in enumerate(sequences) if i % count == index]
