"""Teachers ``teacher(features, memory) -> (coeffs, memory)``, the student state they read, and
the session that runs a teacher inside a student's training."""

from l2t.teachers.attention import AttentionTeacher
from l2t.teachers.base import TEACHERS, Teacher, call_teacher, teacher_params
from l2t.teachers.schedule import ScheduleTeacher
from l2t.teachers.session import Phase, TeachingSession, replay
from l2t.teachers.state import StateSpec, StateTracker, predict

__all__ = [
    "AttentionTeacher", "Phase", "ScheduleTeacher", "StateSpec", "StateTracker", "TEACHERS", "Teacher",
    "TeachingSession", "call_teacher", "predict", "replay", "teacher_params",
]

from l2t.teachers.checkpoint import LoadedTeacher, load_teacher, save_teacher  # noqa: E402

__all__ += ["LoadedTeacher", "load_teacher", "save_teacher"]
