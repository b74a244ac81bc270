"""The one error type for bad input: what the `stkd` command reports in one line."""


class InputError(ValueError):
    """
    Input that cannot be used: a config, a file, a model, a bag, a message or an argument.

    Raised on purpose, with a message that names what is wrong and, where it can, the fix.
    The command line prints it as one line; any other exception is a bug and keeps its
    traceback. A ValueError, so callers that catch ValueError keep working.
    """
