"""
The launch files, checked without `launch` installed: arguments, executables, parameters.

On a ROS 2 machine `ros2 launch stkd_ros segment.launch.py model:=... image:=...` runs them.
"""

import ast
from pathlib import Path
import re

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _calls(path, name):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def _arguments(path):
    return {c.args[0].value for c in _calls(path, 'DeclareLaunchArgument')}


def _executables(path):
    return {kw.value.value for c in _calls(path, 'Node') for kw in c.keywords
            if kw.arg == 'executable'}


def _console_scripts():
    text = (ROOT / 'setup.py').read_text()
    return set(re.findall(r"'(\w+) = stkd_ros\.[\w.]+:main'", text))


def test_segment_launch_declares_the_documented_arguments():
    path = ROOT / 'launch' / 'segment.launch.py'
    assert {'model', 'image', 'namespace', 'params_file', 'use_flicker_monitor', 'log_level',
            'backend', 'device'} <= _arguments(path)
    assert _executables(path) == {'segment_node', 'flicker_monitor'}


def test_replay_launch_runs_player_segmenter_and_monitor():
    path = ROOT / 'launch' / 'replay.launch.py'
    assert {'bag', 'model', 'image', 'rate'} <= _arguments(path)
    assert _executables(path) == {'bag_player', 'segment_node', 'flicker_monitor'}


@pytest.mark.parametrize('name', ['segment.launch.py', 'replay.launch.py'])
def test_launch_files_use_installed_executables_and_define_the_entry_point(name):
    path = ROOT / 'launch' / name
    assert _executables(path) <= _console_scripts()
    tree = ast.parse(path.read_text())
    assert 'generate_launch_description' in {f.name for f in tree.body
                                             if isinstance(f, ast.FunctionDef)}


def test_params_file_only_sets_declared_parameters():
    params = yaml.safe_load((ROOT / 'config' / 'segment.yaml').read_text())
    sources = {'segment_node': 'segment_node.py', 'flicker_monitor': 'flicker_node.py'}
    for node, source in sources.items():
        text = (ROOT / 'stkd_ros' / 'nodes' / source).read_text()
        for key in params[node]['ros__parameters']:
            assert f"'{key}'" in text, f'{node}: {key} is not declared in {source}'


def test_middleware_profile_is_installed_and_well_formed():
    from xml.etree import ElementTree
    root = ElementTree.parse(ROOT / 'config' / 'fastdds_profile.xml').getroot()
    assert root.tag.endswith('profiles')
    assert "glob('config/*.xml')" in (ROOT / 'setup.py').read_text()
