"""The exception types for what is not a bug in l2t.

The CLI turns an :class:`L2TError` into a single line on stderr and exit status 2; any other
exception is a bug and keeps its traceback.
"""


class L2TError(Exception):
    """A problem with the user's input (path, file, shape, name, value), not a bug in l2t."""


class AgreedError(L2TError):
    """An error every process of a torchrun job raises together (rank 0's, broadcast); only rank
    0 prints it."""


class Diverged(L2TError):
    """A student's training left the range where its hypergradient means anything (non-finite or
    exploding values, or a fixed-point walk out of range). ``teach`` skips such an episode, logs
    it and counts it; elsewhere it is an ordinary one-line error."""
