"""ROS 2 code style over the whole package, as `colcon test` runs it."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    paths = [p for p in ('stkd_ros', 'test', 'bench', 'experiments', 'launch', 'setup.py')
             if (ROOT / p).exists()]
    rc, errors = main_with_errors(argv=[str(ROOT / p) for p in paths])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
