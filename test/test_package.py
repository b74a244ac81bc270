"""The ROS 2 package installs the way colcon installs an ament_python package."""

from pathlib import Path
import subprocess
import sys
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python():
    root = ElementTree.parse(ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'stkd_ros'
    assert root.find('export/build_type').text == 'ament_python'
    exec_deps = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs'} <= exec_deps
    assert {'ament_flake8', 'ament_pep257'} <= {e.text for e in root.findall('test_depend')}


def test_setup_install_lays_out_share_and_lib_like_colcon(tmp_path):
    """`setup.py install` (what colcon runs) puts the marker, package.xml and scripts in place."""
    prefix = tmp_path / 'install'
    subprocess.run([sys.executable, 'setup.py', '-q', 'build', '--build-base',
                    str(tmp_path / 'build'), 'install', '--prefix', str(prefix),
                    '--single-version-externally-managed', '--record',
                    str(tmp_path / 'record.txt')], cwd=ROOT, check=True, capture_output=True)
    share = prefix / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'stkd_ros').is_file()
    assert (share / 'stkd_ros' / 'package.xml').is_file()
    for launch in (ROOT / 'launch').glob('*.launch.py'):
        assert (share / 'stkd_ros' / 'launch' / launch.name).is_file()
    for config in (ROOT / 'config').glob('*.yaml'):
        assert (share / 'stkd_ros' / 'config' / config.name).is_file()
    assert (prefix / 'lib' / 'stkd_ros' / 'stkd').is_file()   # where `ros2 run` looks
