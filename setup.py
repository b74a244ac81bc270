from glob import glob

from setuptools import find_packages, setup

package_name = 'stkd_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
        ('share/' + package_name + '/config/distill', glob('config/distill/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='stkd_ros maintainers',
    maintainer_email='maintainers@stkd-ros.dev',
    description='Real-time semantic segmentation that is stable from frame to frame: '
                'spatial-temporal consistency distillation and a ROS 2 runtime.',
    license='Apache-2.0',
    # colcon test runs pytest when setup.py names it here (tests_require is gone from setuptools).
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'stkd = stkd_ros.cli:main',
            'segment_node = stkd_ros.nodes.segment_node:main',
            'flicker_monitor = stkd_ros.nodes.flicker_node:main',
            'bag_player = stkd_ros.nodes.bag_player_node:main',
        ],
    },
)
