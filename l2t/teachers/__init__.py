"""Teachers ``teacher(features, memory) -> (coeffs, memory)``, the student state they read, and
the session that runs a teacher inside a student's training."""

from l2t.teachers.attention import AttentionTeacher
from l2t.teachers.base import TEACHERS, Teacher, call_teacher, teacher_params
from l2t.teachers.loss_network import CoefficientsProbe, LossNetworkSchedule, LossNetworkTeacher
from l2t.teachers.recurrent import RecurrentTeacher
from l2t.teachers.schedule import ScheduleTeacher
from l2t.teachers.session import Phase, TeachingSession, replay
from l2t.teachers.state import DEFAULT_FEATURES, STATE_FEATURES, DevStats, StateSpec, StateTracker, dev_stats
from l2t.teachers.checkpoint import LoadedTeacher, load_teacher, save_teacher  # noqa: E402  (after the teachers)

__all__ = [
    "AttentionTeacher", "CoefficientsProbe", "DEFAULT_FEATURES", "DevStats", "LoadedTeacher", "LossNetworkSchedule",
    "LossNetworkTeacher", "Phase", "RecurrentTeacher", "STATE_FEATURES",
    "ScheduleTeacher", "StateSpec", "StateTracker", "TEACHERS", "Teacher", "TeachingSession", "call_teacher",
    "dev_stats", "load_teacher", "replay", "save_teacher", "teacher_params",
]
