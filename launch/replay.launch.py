"""
Replay a bag through segmentation and flicker measurement.

bag_player publishes the bag's images, segment_node segments them, flicker_monitor measures.

    ros2 launch stkd_ros replay.launch.py bag:=/path/bag model:=/path/model.safetensors

The player starts once both nodes subscribe, and both queue frames instead of keeping only the
latest, so every frame of the bag gets a mask and a flicker step. The launch keeps running
after the bag (Ctrl-C ends it); a node that fails, the player included, shuts it down.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler, SetEnvironmentVariable
from launch.actions import Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from stkd_ros.nodes import replay_settings


def _shutdown_if_failed(event, context):
    # The player exits 0 after the bag while the others finish its last frames.
    if event.returncode != 0:
        return Shutdown(reason=f'{event.action.name} exited with code {event.returncode}')


def generate_launch_description():
    share = get_package_share_directory('stkd_ros')
    image = LaunchConfiguration('image')
    params_file = LaunchConfiguration('params_file')
    log = ['--ros-args', '--log-level', LaunchConfiguration('log_level')]
    player = Node(package='stkd_ros', executable='bag_player', name='bag_player',
                  output='screen', arguments=log,
                  # [[image]] is a list of one topic; [image] would be a single string.
                  parameters=[{'bag': LaunchConfiguration('bag'), 'topics': [[image]],
                               'rate': LaunchConfiguration('rate'),
                               'loop': LaunchConfiguration('loop'),
                               'wait_for_subscribers': replay_settings.PLAYER_WAITS_FOR}])
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='bag directory or file (MCAP or sqlite3)'),
        DeclareLaunchArgument('model', description='model file: .safetensors (backend torch) '
                                                   'or .onnx from `stkd export` (onnxruntime, '
                                                   'openvino)'),
        DeclareLaunchArgument('backend', default_value='torch',
                              description='torch, onnxruntime or openvino'),
        DeclareLaunchArgument('image', default_value='/camera/image_raw',
                              description='image topic in the bag'),
        DeclareLaunchArgument('rate', default_value='1.0',
                              description='playback speed, times the recorded timing'),
        DeclareLaunchArgument('loop', default_value='false', description='replay forever'),
        DeclareLaunchArgument('temporal_fusion', default_value='false',
                              description="segment_node's temporal_fusion, over "
                                          "params_file's: fuse each frame's class "
                                          'probabilities with the past carried along the '
                                          'flow (its settings: params_file)'),
        DeclareLaunchArgument('params_file',
                              default_value=os.path.join(share, 'config', 'segment.yaml'),
                              description='parameters of segment_node and flicker_monitor'),
        DeclareLaunchArgument('log_level', default_value='info', description='ROS log level'),
        SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE',
                               os.path.join(share, 'config', 'fastdds_profile.xml')),
        player,
        RegisterEventHandler(OnProcessExit(target_action=player,
                                           on_exit=_shutdown_if_failed)),
        Node(package='stkd_ros', executable='segment_node', name='segment_node',
             output='screen', remappings=[('image', image)], arguments=log,
             parameters=[params_file, {'model_path': LaunchConfiguration('model'),
                                       'backend': LaunchConfiguration('backend'),
                                       'temporal_fusion': LaunchConfiguration('temporal_fusion'),
                                       **replay_settings.SEGMENT_NODE}],
             on_exit=Shutdown(reason='segment_node exited')),
        Node(package='stkd_ros', executable='flicker_monitor', name='flicker_monitor',
             output='screen', remappings=[('image', image)],
             parameters=[params_file, replay_settings.FLICKER_MONITOR],
             arguments=log, on_exit=Shutdown(reason='flicker_monitor exited')),
    ])
