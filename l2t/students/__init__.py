"""Student networks: a registry of architectures and a functional wrapper to train them."""

from l2t.students import lenet as _lenet  # noqa: F401  (registers "lenet")
from l2t.students import mlp as _mlp  # noqa: F401  (registers "mlp")
from l2t.students.base import STUDENTS, Params, Student, create_student

__all__ = ["STUDENTS", "Params", "Student", "create_student"]
