"""
Segment a camera stream: segment_node, and optionally flicker_monitor.

    ros2 launch stkd_ros segment.launch.py model:=/path/model.safetensors image:=/camera/image_raw
    ros2 launch stkd_ros segment.launch.py model:=/path/model.onnx backend:=onnxruntime
    ros2 launch stkd_ros segment.launch.py model:=/path/model.safetensors cameras:=front,rear

With ``cameras`` one segment_node segments every camera in one batched forward pass: camera
NAME's images come in on NAME/<image> (``image`` is then the topic under each camera, e.g.
image_raw) and its masks go out on NAME/segmentation/*; the flicker monitor runs once per camera.

A node that exits (a startup error, or segment_node giving up after max_consecutive_failures
frames failed in a row: its error line is in the log) shuts the launch down. With
``respawn:=true`` launch starts segment_node again instead (after ``respawn_delay`` seconds),
and only Ctrl-C ends the launch.
"""

import os
import re

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.actions import Shutdown
from launch.conditions import evaluate_condition_expression, IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _cameras(context) -> list:
    """Return the names in ``cameras``: 'front,rear', 'front rear' or '[front, rear]'."""
    text = LaunchConfiguration('cameras').perform(context)
    return [c for c in re.split(r'[\s,]+', text.strip().strip('[]')) if c]


def _nodes(context):
    cameras = _cameras(context)
    image = LaunchConfiguration('image').perform(context)
    if cameras and image.startswith('/'):
        raise RuntimeError(f'with cameras, image is the topic under each camera (e.g. '
                           f'image_raw), not the absolute {image}')
    namespace = LaunchConfiguration('namespace').perform(context)
    params_file = LaunchConfiguration('params_file')
    log = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    prefixes = [f'{c}/' for c in cameras] or ['']
    remap = [(f'{p}image', f'{p}{image}') for p in prefixes]
    segment_params = {'model_path': LaunchConfiguration('model'),
                      'backend': LaunchConfiguration('backend'),
                      'device': LaunchConfiguration('device')}
    if cameras:
        segment_params['cameras'] = cameras
    # launch runs on_exit on every exit, respawned or not: a respawned node must not have it.
    respawn = evaluate_condition_expression(context, [LaunchConfiguration('respawn')])
    restart = ({'respawn': True,
                'respawn_delay': float(LaunchConfiguration('respawn_delay').perform(context))}
               if respawn else {'on_exit': Shutdown(reason='segment_node exited')})
    nodes = [Node(package='stkd_ros', executable='segment_node', name='segment_node',
                  namespace=namespace, output='screen', remappings=remap,
                  parameters=[params_file, segment_params], arguments=log, **restart)]
    for camera in cameras or ['']:
        # Each monitor in its camera's namespace: its image, mask and flicker topics are that
        # camera's, and it reads the flicker_monitor section of the parameters file.
        nodes.append(Node(
            package='stkd_ros', executable='flicker_monitor', name='flicker_monitor',
            namespace='/'.join(p for p in (namespace.strip('/'), camera) if p),
            output='screen', remappings=[('image', image)], parameters=[params_file],
            arguments=log, condition=IfCondition(LaunchConfiguration('use_flicker_monitor')),
            on_exit=Shutdown(reason=' '.join(filter(None, ('flicker_monitor', camera,
                                                           'exited'))))))
    return nodes


def generate_launch_description():
    share = get_package_share_directory('stkd_ros')
    return LaunchDescription([
        DeclareLaunchArgument('model', description='model file: .safetensors (backend torch) '
                                                   'or .onnx from `stkd export` (onnxruntime, '
                                                   'openvino)'),
        DeclareLaunchArgument('image', default_value='image',
                              description='camera image topic (sensor_msgs/Image); with '
                                          'cameras, the topic under each camera'),
        DeclareLaunchArgument('cameras', default_value='',
                              description='camera names, e.g. front,rear: one batched node '
                                          'for all; empty = one camera on image'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='namespace of the nodes and their topics'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'segment.yaml'),
                              description='parameters of segment_node and flicker_monitor'),
        DeclareLaunchArgument('use_flicker_monitor', default_value='false',
                              description='also run flicker_monitor (one per camera)'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='ROS log level'),
        DeclareLaunchArgument('backend', default_value='torch',
                              description='torch, onnxruntime or openvino'),
        DeclareLaunchArgument('device', default_value='cpu',
                              description='torch device: cpu, cuda, cuda:N'),
        DeclareLaunchArgument('respawn', default_value='false',
                              description='start segment_node again when it exits (false: '
                                          'its exit shuts the launch down)'),
        DeclareLaunchArgument('respawn_delay', default_value='1.0',
                              description='seconds before segment_node is started again'),
        # Fast DDS profile shipped with the package: large frames over shared memory.
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_profile.xml')),
        OpaqueFunction(function=_nodes),
    ])
