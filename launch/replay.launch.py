"""
Replay a bag through segmentation and flicker measurement.

bag_player publishes the bag's images, segment_node segments them, flicker_monitor measures.

    ros2 launch stkd_ros replay.launch.py bag:=/path/bag model:=/path/model.safetensors
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('stkd_ros')
    image = LaunchConfiguration('image')
    params_file = LaunchConfiguration('params_file')
    log = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='bag directory or file (MCAP or sqlite3)'),
        DeclareLaunchArgument('model', description='stkd model file (.safetensors)'),
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='image topic in the bag'),
        DeclareLaunchArgument('rate', default_value='1.0',
                              description='playback speed, times the recorded timing'),
        DeclareLaunchArgument('loop', default_value='false', description='replay forever'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'segment.yaml'),
                              description='parameters of segment_node and flicker_monitor'),
        DeclareLaunchArgument('log_level', default_value='info', description='ROS log level'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_profile.xml')),
        Node(package='stkd_ros', executable='bag_player', name='bag_player', output='screen',
             parameters=[{'bag': LaunchConfiguration('bag'), 'topics': [image],
                          'rate': LaunchConfiguration('rate'),
                          'loop': LaunchConfiguration('loop')}], arguments=log),
        Node(package='stkd_ros', executable='segment_node', name='segment_node',
             output='screen', remappings=[('image', image)],
             parameters=[params_file, {'model_path': LaunchConfiguration('model')}],
             arguments=log),
        Node(package='stkd_ros', executable='flicker_monitor', name='flicker_monitor',
             output='screen', remappings=[('image', image)], parameters=[params_file],
             arguments=log),
    ])
