"""Shared fixtures: a small synthetic world, rendered once per session."""

import pytest
from stkd_ros.data.synthetic import SyntheticConfig, SyntheticWorld


@pytest.fixture(scope='session')
def small_world():
    return SyntheticWorld(SyntheticConfig(height=96, width=192, frames=6, difficulty=0.6,
                                          seed=3))


@pytest.fixture(scope='session')
def world_256():
    return SyntheticWorld(SyntheticConfig(height=256, width=512, frames=4, difficulty=0.5,
                                          seed=11))
