"""
Declaring node parameters the way `ros2 param` can read them, with ints accepted for floats.

Every parameter is declared up front with a static type, a value and a description, so
``ros2 param get/dump/describe`` work on each of them. An empty list gets its type from a
``Parameter.Type`` (rclpy would infer BYTE_ARRAY from ``[]``). A whole number given for a
float parameter (``-p rate:=2``, ``ros2 param set ... overlay_alpha 1``) is taken as a float
instead of killing the node with a type error.
"""

from rcl_interfaces.msg import IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter


def describe(text: str, read_only: bool = False, **ranges) -> ParameterDescriptor:
    """Descriptor with a description, optionally read-only and with a range."""
    return ParameterDescriptor(description=text, read_only=read_only, **ranges)


def int_range(low: int, high: int = 1_000_000) -> list:
    """Return an integer_range for ``describe``: ``low`` to ``high`` inclusive."""
    return [IntegerRange(from_value=low, to_value=high, step=1)]


def declare(node, specs) -> dict:
    """
    Declare ``(name, default, descriptor)`` specs on ``node``; return ``{name: value}``.

    ``default`` is a value, or a ``Parameter.Type`` array type for an empty list.
    """
    values = {}
    for name, default, descriptor in specs:
        if isinstance(default, float):
            _float_override(node, name)
        if isinstance(default, Parameter.Type):
            # An empty list can only be set after declaring (declare infers BYTE_ARRAY from
            # []), and a read-only parameter cannot be set: write first, then make it
            # read-only on the descriptor object that rclpy keeps.
            read_only, descriptor.read_only = descriptor.read_only, False
            if node.declare_parameter(name, default, descriptor).type_ == Parameter.Type.NOT_SET:
                node.set_parameters([Parameter(name, default, [])])
            descriptor.read_only = read_only
        else:
            node.declare_parameter(name, default, descriptor)
        values[name] = node.get_parameter(name).value
    if hasattr(node, 'add_pre_set_parameters_callback'):   # Iron and later
        node.add_pre_set_parameters_callback(lambda params: [_as_float(node, p) for p in params])
    return values


def _float_override(node, name: str):
    # rclpy types a launch/command-line override by its text ("2" is INTEGER) and refuses it
    # for a DOUBLE parameter at declaration; pre-set callbacks do not run there.
    overrides = node._parameter_overrides
    if name in overrides and overrides[name].type_ == Parameter.Type.INTEGER:
        overrides[name] = Parameter(name, Parameter.Type.DOUBLE, float(overrides[name].value))


def _as_float(node, param):
    if (param.type_ == Parameter.Type.INTEGER and node.has_parameter(param.name)
            and node.get_parameter(param.name).type_ == Parameter.Type.DOUBLE):
        return Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
    return param
