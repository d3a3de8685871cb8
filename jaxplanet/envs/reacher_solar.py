"""The SOLAR paper's reacher (Zhang et al., ICML 2019) on dm_control's two-link reacher.

The released code's reacher (parasol ``gym/mujoco/reacher.py`` with the ``solar/reacher-image``
experiment) starts every episode at joint angles 0 (velocities U(-0.005, 0.005)), keeps the
target at (-0.1, -0.1), rewards each step with ``-|fingertip - target|^2 - 0.05 |a|^2`` and runs
50 steps of 0.02 s. dm_control's ``reacher_easy`` instead draws the start and the target at
random each episode and pays 1 only inside the target: a fixed time-varying linear policy
(LQR-FLM's) cannot follow a target that moves between episodes. This task keeps dm_control's
arm, arena and camera (its physics step is 0.02 s, so one action per step) with the released
start, target and reward. ``random_start`` / ``random_target`` draw them as the released code's
model pretraining does (joint angles U(-pi, pi), the wrist within its limits; target
U(-0.2, 0.2)^2).

One change to what the camera sees: the arm's three capsules are drawn ``ARM_SCALE`` times as
thick (radius 0.025 instead of 0.01). At 64x64 pixels dm_control's arm is a line 1-2 pixels
wide that the model's reconstructions leave out; the thicker arm is drawn only -- the capsules
lose their contacts (they cannot reach the walls, and the thicker ones would touch the floor)
and the bodies keep the inertia compiled from the original sizes, so the physics is dm_control's
(tested: the same actions give the same joint angles).

dm_control is imported when a task is made.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ACTION_COST", "ARM_SCALE", "DEFAULTS", "REACHED", "TARGET", "load", "squared_distances"]

TARGET = (-0.1, -0.1)
ACTION_COST = 0.05
#: Reached: the fingertip within the target's radius (0.05) plus the finger's (0.01), where
#: dm_control's reacher pays its reward.
REACHED = 0.06
#: How many times dm_control's arm radius the arm is drawn (rendering only).
ARM_SCALE = 2.5
_ARM_GEOMS = ("arm", "hand", "finger")
#: 50 agent steps of one 0.02 s physics step, as released; the released start and target.
DEFAULTS = {"action_repeat": 1, "episode_length": 50, "random_start": False, "random_target": False}


def load(
    random: int,
    random_start: bool = False,
    random_target: bool = False,
    arm_scale: float = ARM_SCALE,
) -> Any:
    """A dm_control ``control.Environment`` of the task (no time limit: the caller truncates);
    ``arm_scale`` = 1 is dm_control's own arm, untouched."""
    from dm_control.rl import control
    from dm_control.suite import reacher

    class SolarReacher(reacher.Reacher):
        def initialize_episode(self, physics: Any) -> None:
            physics.named.model.geom_size["target", 0] = self._target_size
            wrist = np.deg2rad(160.0)  # the wrist joint's range in reacher.xml
            start = self.random.uniform([-np.pi, -wrist], [np.pi, wrist])
            physics.named.data.qpos[:] = start if random_start else 0.0
            physics.named.data.qvel[:] = self.random.uniform(-0.005, 0.005, 2)
            target = self.random.uniform(-0.2, 0.2, 2) if random_target else TARGET
            physics.named.model.geom_pos["target", "x"] = target[0]
            physics.named.model.geom_pos["target", "y"] = target[1]
            self.after_step(physics)

        def get_reward(self, physics: Any) -> float:
            d2 = float(np.sum(np.square(physics.finger_to_target())))
            return -d2 - ACTION_COST * float(np.sum(np.square(physics.data.ctrl)))

    physics = reacher.Physics.from_xml_string(*reacher.get_model_and_assets())
    for geom in _ARM_GEOMS if arm_scale != 1.0 else ():  # drawn thicker, contacts off
        physics.named.model.geom_size[geom, 0] *= arm_scale
        physics.named.model.geom_contype[geom] = 0
        physics.named.model.geom_conaffinity[geom] = 0
    task = SolarReacher(target_size=0.05, random=random)
    return control.Environment(physics, task, time_limit=float("inf"))


def squared_distances(episode: dict[str, Any]) -> np.ndarray:
    """|fingertip - target|^2 after each step, f32 [T], from an episode's ``reward`` [T+1] and
    ``action`` [T+1] records (`core.episodes.run_episode`; action repeat 1)."""
    r = np.asarray(episode["reward"][1:], np.float64)
    a = np.asarray(episode["action"][1:], np.float64)
    return (-(r + ACTION_COST * np.sum(a**2, axis=-1))).astype(np.float32)
