"""l2t: learning to teach with dynamic loss functions (L2T-DLF, NeurIPS 2018).

The public entry points: :func:`l2t.teach.teach` (train a teacher, Algorithm 1),
:func:`l2t.train.train_student` (train a student with a loss or a teacher),
:func:`l2t.hypergrad.hypergradient` (exact hypergradients, several methods) and
:class:`TeacherLoss` (a trained teacher inside your own training loop).
"""

__version__ = "0.1.0"

from l2t.api import TeacherLoss  # noqa: E402

__all__ = ["TeacherLoss", "__version__"]
