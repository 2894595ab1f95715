"""Student networks: a registry of architectures and a functional wrapper to train them.

``STUDENTS.list()``: image classifiers mlp, lenet, resnet (any 6n+2 depth) with
resnet8/20/32, wrn (depth, widen) with wrn16_4/wrn28_10, densenet_bc (depth, growth) with
densenet_bc_100_12/densenet_bc_190_40; sequence-to-sequence lstm1, lstm2, transformer and
transformer_iwslt; dense prediction unet (segmentation) and detector (boxes on a grid). A student is created from the task (:mod:`l2t.types`), not from shapes.
"""

from l2t.students import dense as _dense  # noqa: F401  (registers unet, detector)
from l2t.students import densenet as _densenet  # noqa: F401  (registers densenet_bc*)
from l2t.students import lenet as _lenet  # noqa: F401  (registers "lenet")
from l2t.students import mlp as _mlp  # noqa: F401  (registers "mlp")
from l2t.students import resnet_cifar as _resnet  # noqa: F401  (registers resnet*)
from l2t.students import seq2seq as _seq2seq  # noqa: F401  (registers lstm1, lstm2, transformer*)
from l2t.students import wide_resnet as _wrn  # noqa: F401  (registers wrn*)
from l2t.students.base import MODES, STUDENTS, Student, create_student

__all__ = ["MODES", "STUDENTS", "Student", "create_student"]
