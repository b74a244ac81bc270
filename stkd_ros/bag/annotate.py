"""`eval-bag --write-bag`: a copy of the bag with each model's mask and colour topics added."""

from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer

from stkd_ros.bag.messages import decode, IMAGE, image_message, TYPESTORE
from stkd_ros.bag.reader import BagError, open_bag
from stkd_ros.image_msgs import ImageError, stamp_ns


def output_topics(name: str) -> tuple:
    base = '/stkd/' + name.replace('/', '_').replace('-', '_').replace('.', '_')
    return f'{base}/mask', f'{base}/color'


def write_annotated_bag(bag, out, topic: str, tracks) -> Path:
    """Copy every message of ``bag`` into MCAP ``out``, adding masks and colours per model."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f'bag {out} already exists; choose a new path')
    with open_bag(bag) as reader:
        if any(not hasattr(c.ext, 'serialization_format') for c in reader.connections):
            raise BagError('--write-bag copies ROS 2 bags only; this is a ROS 1 bag')
        writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        try:
            copies = {c.id: writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data,
                                                  rihs01=c.digest) for c in reader.connections}
            added = {t.name: [writer.add_connection(name, IMAGE, typestore=TYPESTORE)
                              for name in output_topics(t.name)] for t in tracks}
            for conn, stamp, raw in reader.messages():
                writer.write(copies[conn.id], stamp, raw)
                if conn.topic != topic:
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                try:
                    frame = decode(conn.msgtype, msg)
                except ImageError:
                    continue
                header_ns = stamp_ns(msg)
                for t in tracks:
                    mask = t.segmenter.segment(frame)
                    for c, array in zip(added[t.name], (mask, t.segmenter.colorize(mask))):
                        out_msg = image_message(array, header_ns, msg.header.frame_id)
                        writer.write(c, stamp, TYPESTORE.serialize_cdr(out_msg, IMAGE))
        finally:
            writer.close()
    return out
