"""
Segment a camera stream: segment_node, and optionally flicker_monitor.

    ros2 launch stkd_ros segment.launch.py model:=/path/model.safetensors image:=/camera/image_raw
    ros2 launch stkd_ros segment.launch.py model:=/path/model.onnx backend:=onnxruntime

A node that exits (a startup error: its one error line is in the log) shuts the launch down.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory('stkd_ros')
    model = LaunchConfiguration('model')
    image = LaunchConfiguration('image')
    namespace = LaunchConfiguration('namespace')
    params_file = LaunchConfiguration('params_file')
    log_level = LaunchConfiguration('log_level')
    remap = [('image', image)]
    return LaunchDescription([
        DeclareLaunchArgument('model', description='model file: .safetensors (backend torch) '
                                                   'or .onnx from `stkd export` (onnxruntime)'),
        DeclareLaunchArgument('image', default_value='image',
                              description='camera image topic (sensor_msgs/Image)'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the nodes and their topics'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'segment.yaml'),
                              description='parameters of segment_node and flicker_monitor'),
        DeclareLaunchArgument('use_flicker_monitor', default_value='false',
                              description='also run flicker_monitor'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='ROS log level'),
        DeclareLaunchArgument('backend', default_value='torch',
                              description='torch or onnxruntime'),
        DeclareLaunchArgument('device', default_value='cpu',
                              description='torch device: cpu, cuda, cuda:N'),
        # Fast DDS profile shipped with the package: large frames over shared memory.
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_profile.xml')),
        Node(package='stkd_ros', executable='segment_node', name='segment_node',
             namespace=namespace, output='screen', remappings=remap,
             parameters=[params_file, {'model_path': model,
                                       'backend': LaunchConfiguration('backend'),
                                       'device': LaunchConfiguration('device')}],
             arguments=['--ros-args', '--log-level', log_level],
             on_exit=Shutdown(reason='segment_node exited')),
        Node(package='stkd_ros', executable='flicker_monitor', name='flicker_monitor',
             namespace=namespace, output='screen', remappings=remap,
             parameters=[params_file], arguments=['--ros-args', '--log-level', log_level],
             condition=IfCondition(LaunchConfiguration('use_flicker_monitor')),
             on_exit=Shutdown(reason='flicker_monitor exited')),
    ])
