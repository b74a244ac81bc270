"""What every launch test checks after the launch has shut down (import it into the test)."""

import unittest

import launch_testing
import launch_testing.asserts


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_every_node_exits_cleanly(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)
        for output in proc_output:
            self.assertNotIn('Traceback', output.text.decode(errors='replace'))
