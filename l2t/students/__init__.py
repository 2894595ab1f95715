"""Student networks: a registry of architectures and a functional wrapper to train them.

``STUDENTS.list()``: mlp, lenet, resnet (any 6n+2 depth) with resnet8/20/32, wrn (depth, widen)
with wrn16_4/wrn28_10, densenet_bc (depth, growth) with densenet_bc_100_12/densenet_bc_190_40.
"""

from l2t.students import densenet as _densenet  # noqa: F401  (registers densenet_bc*)
from l2t.students import lenet as _lenet  # noqa: F401  (registers "lenet")
from l2t.students import mlp as _mlp  # noqa: F401  (registers "mlp")
from l2t.students import resnet_cifar as _resnet  # noqa: F401  (registers resnet*)
from l2t.students import wide_resnet as _wrn  # noqa: F401  (registers wrn*)
from l2t.students.base import STUDENTS, HeadOutputs, Params, Student, create_student

__all__ = ["STUDENTS", "HeadOutputs", "Params", "Student", "create_student"]
