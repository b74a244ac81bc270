"""What every stkd_ros node shares: the main() loop and the /diagnostics message."""

import faulthandler
import signal
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from stkd_ros.errors import InputError

# What a user gets wrong at start: a missing file, a bad value, a parameter of the wrong type.
# Anything else is a bug and keeps its traceback.
STARTUP_ERRORS = (FileNotFoundError, InputError, ParameterException)

# Ctrl-C must end a node even when a teardown stalls: once in CI (2026-12-04) flicker_monitor
# was still running 5 s after Ctrl-C, and some 320 stops here did not bring it back.
# faulthandler's watchdog is a C thread that needs no GIL, so it fires even if the stall holds
# the GIL: it prints where every thread stands and exits with status 1.
TEARDOWN_DEADLINE_S = 3.0


def run(make_node, name: str, args=None, work=None):
    """
    Create the node, spin it (or call ``work(node)``), and shut down cleanly.

    Works on Humble, Jazzy and Kilted. A startup error (missing file, bad parameter) prints
    one line on stderr and exits with status 1; Ctrl-C exits 0 without a traceback. From the
    start of the teardown, the process has ``TEARDOWN_DEADLINE_S`` to end, the interpreter's
    exit included (where rclpy and DDS threads can stall too): past it, every thread's stack
    is printed and the process exits 1. So ``run`` is the last call of a node's main().
    """
    rclpy.init(args=args)
    node, error = None, None
    try:
        try:
            node = make_node()
        except STARTUP_ERRORS as exc:
            error = exc
        else:
            if work is None:
                rclpy.spin(node)
            else:
                work(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Seen once in CI: after Ctrl-C shut the context down, the executor still took a
        # message from a subscription being torn down and rclpy raised a pybind11 conversion
        # error. During shutdown that is not a failure; while the context is up it is.
        if rclpy.ok():
            raise
    finally:
        # rclpy's SIGINT handler wakes spin() and then Python raises KeyboardInterrupt a
        # moment later: ignore further SIGINTs so that it cannot interrupt the cleanup.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Never cancelled: the deadline covers the interpreter's exit after run() returns.
        faulthandler.dump_traceback_later(TEARDOWN_DEADLINE_S, exit=True)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if error is not None:
        print(f'{name}: error: {error}', file=sys.stderr)
        sys.exit(1)


def diagnostics(node, name: str, hardware_id: str, message: str, values: dict,
                level=DiagnosticStatus.OK) -> DiagnosticArray:
    """One DiagnosticArray with a single status; floats are printed with 4 decimals."""
    return diagnostic_array(node, [diagnostic_status(node, name, hardware_id, message, values,
                                                     level)])


def diagnostic_status(node, name: str, hardware_id: str, message: str, values: dict,
                      level=DiagnosticStatus.OK) -> DiagnosticStatus:
    """Return a status named ``<node>: <name>``; floats printed with 4 decimals."""
    status = DiagnosticStatus(name=f'{node.get_name()}: {name}', hardware_id=hardware_id,
                              level=level, message=message)
    status.values = [KeyValue(key=k, value=f'{v:.4f}' if isinstance(v, float) else str(v))
                     for k, v in values.items()]
    return status


def diagnostic_array(node, statuses) -> DiagnosticArray:
    """Return the statuses in one DiagnosticArray stamped now."""
    msg = DiagnosticArray(status=list(statuses))
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg
