"""Sampling: requests and parameters, the timestep schedule, guidance, solvers and the loop."""
from .guidance import GuidedVelocity, PassVelocities, Velocity, guide, pass_switches
from .loop import sample, seeded_noise
from .params import MAX_STEPS, Request, SampleResult, SamplingParams, StepInfo
from .tasks import TASKS, Task, TaskSpec
from .flow import NUM_TIMESTEPS
from .schedule import SCHEDULES, Schedule, timesteps
from .solvers import SOLVERS, Solver, register

__all__ = ["GuidedVelocity", "PassVelocities", "Velocity", "guide", "pass_switches", "sample", "seeded_noise",
           "MAX_STEPS", "Request", "SampleResult", "SamplingParams", "StepInfo", "TASKS", "Task", "TaskSpec",
           "NUM_TIMESTEPS", "SCHEDULES", "Schedule", "timesteps", "SOLVERS", "Solver", "register"]
