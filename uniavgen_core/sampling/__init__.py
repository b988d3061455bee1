"""Sampling: requests and parameters, the timestep schedule, guidance, solvers and the loop."""
from .flat import Denoiser, FlatLayout
from .guidance import GuidedVelocity, PassVelocities, Velocity, guide, pass_switches
from .loop import Prepared, prepare, sample, seeded_noise
from .params import MAX_STEPS, Request, SampleResult, SamplingParams, StepInfo
from .tasks import TASKS, Task, TaskSpec
from .flow import NUM_TIMESTEPS
from .schedule import SCHEDULES, Schedule, timesteps
from .solvers import SOLVERS, Solver, register

__all__ = ["Denoiser", "FlatLayout", "GuidedVelocity", "PassVelocities", "Velocity", "guide", "pass_switches",
           "Prepared", "prepare", "sample", "seeded_noise",
           "MAX_STEPS", "Request", "SampleResult", "SamplingParams", "StepInfo", "TASKS", "Task", "TaskSpec",
           "NUM_TIMESTEPS", "SCHEDULES", "Schedule", "timesteps", "SOLVERS", "Solver", "register"]
