"""The node process: main()'s create-spin-teardown loop, its exit status, its deadline."""

import ctypes
import faulthandler
import logging
import os
import signal
import sys

import rclpy
from rclpy.exceptions import ParameterException
from stkd_ros.errors import InputError

# What a user gets wrong at start: a missing file, a bad value, a parameter of the wrong type.
# Anything else is a bug and keeps its traceback.
STARTUP_ERRORS = (FileNotFoundError, InputError, ParameterException)

# Ctrl-C must end a node even when a teardown stalls: once in CI (2026-12-04) flicker_monitor
# was still running 5 s after Ctrl-C, and some 320 stops here did not bring it back.
# faulthandler's watchdog is a C thread that needs no GIL, so it fires even if the stall holds
# the GIL: it prints where every thread stands and exits with status 1.
TEARDOWN_DEADLINE_S = 3.0


class NodeGaveUp(Exception):
    """The node cannot go on (its frames keep failing): run() prints the reason, exits 1."""


class GiveUp:
    """
    End a spinning node from any thread: ``give_up(reason)`` stops ``run``'s spin.

    A worker thread cannot raise into the thread that spins. A guard condition wakes the
    executor there, and its callback raises :class:`NodeGaveUp` out of ``rclpy.spin``, so the
    node leaves through ``run``'s teardown (the deadline included) with status 1, and a launch
    with ``respawn`` starts it again.
    """

    def __init__(self, node):
        self.reason = None
        self._guard = node.create_guard_condition(self._raise)

    def __call__(self, reason: str):
        if self.reason is None:   # the first reason is the one that ended the node
            self.reason = reason
        self._guard.trigger()

    def _raise(self):
        raise NodeGaveUp(self.reason)


def run(make_node, name: str, args=None, work=None):
    """
    Create the node, spin it (or call ``work(node)``), and shut down cleanly.

    Works on Humble, Jazzy and Kilted. A startup error (missing file, bad parameter) prints
    one line on stderr and exits with status 1, and so does a node that gives up while it
    runs (:class:`GiveUp`; it has logged why, with the traceback). Ctrl-C ends the node the
    way rclcpp does: the context shuts down, so ``spin`` returns and ``rclpy.ok()`` turns false
    in ``work``'s loop, and no exception is thrown into the node's code; the node exits 0.
    From the start of the teardown, the node has ``TEARDOWN_DEADLINE_S`` to release what it
    holds: past it, every thread's stack is printed and the process exits 1. Then the process
    ends at once (:func:`exit_now`), so ``run`` is the last call of a node's main(). A bug's
    exception leaves ``run`` with its traceback, and the deadline still covers the
    interpreter's exit.
    """
    # rclpy's SIGINT handler shuts the context down, then calls the handler that was installed
    # before rclpy.init. Python's default one would raise KeyboardInterrupt wherever the main
    # thread stands: once in CI (2026-12-06) the second SIGINT of a Ctrl-C (launch's and the
    # process group's) landed in the warning about an executor coroutine that the first one had
    # dropped, and printed a traceback. The shutdown alone ends the node, so Python's part of
    # the signal does nothing.
    signal.signal(signal.SIGINT, _context_shutdown_ends_the_node)
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
    except NodeGaveUp as exc:
        error = exc
    except Exception:
        # Once Ctrl-C has shut the context down, whatever the node was doing ends the way
        # rclpy ends on a dead context: spin raises ExternalShutdownException, making the node
        # raises NotInitializedException, and (seen once in CI) taking a message from a
        # subscription being torn down raised a pybind11 conversion error. That is the stop
        # that was asked for; while the context is up, an exception is a bug.
        if rclpy.ok():
            raise
    finally:
        # Never cancelled: after a bug's exception it covers the interpreter's exit too.
        faulthandler.dump_traceback_later(TEARDOWN_DEADLINE_S, exit=True)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if error is not None:
        print(f'{name}: error: {error}', file=sys.stderr)
    exit_now(0 if error is None else 1)


def _context_shutdown_ends_the_node(signum, frame):
    """Python's part of SIGINT: nothing, since rclpy's handler has shut the context down."""


def exit_now(status: int):
    """
    End the process with ``status`` once the node is torn down, without Python's finalization.

    The node has closed its files and destroyed its DDS entities by then; what finalization
    does next (tearing down torch, OpenCV and rclpy modules, joining leftover threads) took
    1.1-1.3 s per node on a quiet machine here and passed the 3 s deadline for two of three
    nodes in a loaded CI run (2026-12-05), for nothing a node needs. Output is flushed first,
    Python's and C's, so the last log lines are kept.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == 'posix':
        ctypes.CDLL(None).fflush(None)   # rcutils logs through C stdio
    os._exit(status)
