"""ROS 2 code style over the whole package, as `colcon test` runs it."""

from ament_flake8.main import main_with_errors
import pytest


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=['stkd_ros', 'test', 'bench', 'launch', 'setup.py'])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
