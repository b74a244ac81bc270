"""
Choosing the image subscription's QoS so that it matches whatever the camera publishes.

A reliable subscription does not match a best-effort publisher at all, and a best-effort one
loses large frames from a reliable publisher on Fast DDS defaults. So: subscribe reliable when
every publisher is reliable, best-effort as soon as one is best-effort, and re-check when the
set of publishers changes.
"""

from stkd_ros.errors import InputError

RELIABLE, BEST_EFFORT = 'reliable', 'best_effort'


def choose_reliability(setting: str, publishers) -> str:
    """
    Resolve the ``reliability`` parameter against the publishers' offered reliability.

    setting: 'auto', 'reliable' or 'best_effort'; publishers: the offered reliabilities
    ('reliable' / 'best_effort') of the topic's current publishers.
    """
    if setting in (RELIABLE, BEST_EFFORT):
        return setting
    if setting != 'auto':
        raise InputError(f'reliability must be auto, reliable or best_effort, got {setting!r}')
    offered = set(publishers)
    if not offered or offered == {RELIABLE}:
        return RELIABLE
    return BEST_EFFORT
