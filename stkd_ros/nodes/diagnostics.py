"""/diagnostics messages of the nodes: one status per figure set, values printed alike."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


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
