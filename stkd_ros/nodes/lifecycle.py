"""What every stkd_ros node shares: the main() loop and the /diagnostics message."""

import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.executors import ExternalShutdownException


def run(make_node, name: str, args=None, work=None):
    """
    Create the node, spin it (or call ``work(node)``), and shut down cleanly.

    Works on Humble, Jazzy and Kilted. A missing file or a bad parameter stops the node with
    one line on stderr and exit status 1.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        if work is None:
            rclpy.spin(node)
        else:
            work(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (FileNotFoundError, ValueError) as exc:
        print(f'{name}: error: {exc}', file=sys.stderr)
        raise SystemExit(1)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


def diagnostics(node, name: str, hardware_id: str, message: str, values: dict,
                level=DiagnosticStatus.OK) -> DiagnosticArray:
    """One DiagnosticArray with a single status; floats are printed with 4 decimals."""
    status = DiagnosticStatus(name=f'{node.get_name()}: {name}', hardware_id=hardware_id,
                              level=level, message=message)
    status.values = [KeyValue(key=k, value=f'{v:.4f}' if isinstance(v, float) else str(v))
                     for k, v in values.items()]
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg
