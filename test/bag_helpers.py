"""Bags written the way recorders write them, for the bag tests (rosbags' own writers)."""

from rosbags.rosbag1 import Writer
from rosbags.typesys import get_typestore, Stores
from stkd_ros.bag.messages import IMAGE


def ros1_image_bag(path, frames, topic: str, stamps, publishers: int = 1):
    """
    Write RGB ``frames`` on ``topic`` of a ROS 1 bag at ``stamps`` (ns).

    ``publishers`` > 1: that many nodes publish the topic (one connection each, by caller id),
    taking the frames in turn.
    """
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    types = ros1.types
    with Writer(path) as writer:
        conns = [writer.add_connection(topic, IMAGE, typestore=ros1, callerid=f'/camera_{k}')
                 for k in range(publishers)]
        for i, (frame, stamp) in enumerate(zip(frames, stamps)):
            h, w = frame.shape[:2]
            msg = types[IMAGE](
                header=types['std_msgs/msg/Header'](
                    seq=i, stamp=types['builtin_interfaces/msg/Time'](
                        sec=stamp // 10**9, nanosec=stamp % 10**9),
                    frame_id='cam'),
                height=h, width=w, encoding='rgb8', is_bigendian=0, step=3 * w,
                data=frame.reshape(-1))
            writer.write(conns[i % publishers], stamp, ros1.serialize_ros1(msg, IMAGE))
    return path
