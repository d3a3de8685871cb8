"""World Models' iterate stage: the paper's iterative training (Sec. 5), rounds 1 .. N - 1.

Round 0 is the one pass of the other stages (random rollouts -> V -> M -> C). Each further round
r collects `iteration_rollouts` real episodes with round r - 1's C (the mean chosen at its
periodic evaluations) plus N(0, `iteration_noise`^2) on its raw action, trains M on from its
last state for `iteration_mdn_steps` updates on every rollout so far (random and C's), and
runs `generations` generations of a fresh CMA-ES (`sigma_init`) in the new M's dream, from C = 0
(`iteration_restart="zero"`) or around that C ("last"), the final C chosen among that round's
evaluations. (On Doom seed 1 a CMA-ES that went on from its state, or restarted around the
wall-pressing C it had collected with, stayed on that policy; from C = 0 it left it.) V is not
retrained (the C-collected frames are encoded by the V trained on random frames). Each step
resumes like the stage it repeats: rollout files by index, M and C from their checkpoints (M's
count at the end of round r is `Run.mdn_target`, C's generations `Run.generation_target`).

The point: C evolved in a dream learns to exploit what M never saw (the Doom dream rates a
player pressed against a wall far above what the game gives). C's own rollouts show M those
states, so the next dream is harder to cheat.
"""

from __future__ import annotations

from typing import Any

from jaxplanet.worldmodels.data import collect_with_controller, rollout_path
from jaxplanet.worldmodels.evolve import _evolution, controller_choice, train_controller
from jaxplanet.worldmodels.run import Run, finished
from jaxplanet.worldmodels.train import train_mdn, world_model_params

__all__ = ["collected_round", "iterate", "iterated"]


def iterated(run: Run) -> bool:
    """Whether every round of iterative training has run (always, with ``iterations=1``)."""
    return finished(run, "controller", run.generation_target(run.final_round))


def iterate(run: Run) -> dict[str, Any]:
    """The iterate stage: rounds 1 .. `iterations` - 1 (nothing with ``iterations=1``)."""
    summary: dict[str, Any] = {}
    for r in range(1, run.r.iterations):
        if finished(run, "controller", run.generation_target(r)):
            continue
        if not collected_round(run, r):  # (round r - 1's checkpoints are kept until then)
            choice = controller_choice(run, "iterate", round=r - 1)
            params = world_model_params(run, "iterate", round=r - 1)
            unflatten = _evolution(run).unflatten
            n = collect_with_controller(run, r, params, choice.flat, unflatten)
            summary[f"iterate/round{r}_rollouts"] = n
        summary.update(train_mdn(run, r))
        summary.update(train_controller(run, r))
    return summary


def collected_round(run: Run, round: int) -> bool:
    """Whether every rollout file of ``round`` exists."""
    directory = run.logdir / "rollouts"
    lo, hi = run.rollout_count(round - 1), run.rollout_count(round)
    return all(rollout_path(directory, i).exists() for i in range(lo, hi))
