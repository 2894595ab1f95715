"""The one exception type for user mistakes.

The CLI turns an :class:`L2TError` into a single line on stderr and a non-zero exit code; any
other exception is a bug and keeps its traceback.
"""


class L2TError(Exception):
    """A problem with the user's input (path, file, shape, name, value), not a bug in l2t."""
