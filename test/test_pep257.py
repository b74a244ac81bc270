"""ROS 2 docstring conventions over the whole package."""

from pathlib import Path

from ament_pep257.main import main
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    paths = [p for p in ('stkd_ros', 'test', 'bench', 'experiments', 'launch')
             if (ROOT / p).exists()]
    rc = main(argv=[str(ROOT / p) for p in paths])
    assert rc == 0, 'Found code style errors / warnings'
