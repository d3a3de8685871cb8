"""One World Models run on the host: config, task, run directory, keys and seeds.

`Run` validates the config, builds the task (a pure-JAX `JaxEnv` such as point_reach, or a host
env run in worker processes: CarRacing, VizDoom), checks the run directory's saved config (a
different one is refused, as for every agent: `checkpoint.check_config`) and derives every PRNG
key and env seed from the run seed by stage (`COLLECT`, `VAE`, ...). The stage helpers here
(`stage_state`, `finished`, `require`) are what each stage uses to resume and to name the stage
that must run first. The policies that act in its host tasks are `jaxplanet.worldmodels.policies`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax

from jaxplanet import envs
from jaxplanet.core import checkpoint, resume, seeding
from jaxplanet.core import config as config_lib
from jaxplanet.envs import car_racing
from jaxplanet.envs.vector import vector_episodes
from jaxplanet.worldmodels import dream
from jaxplanet.worldmodels.config import RESUMABLE_FIELDS, WorldModelsConfig, resolved

#: The pipeline's stages, in order (``--stage``).
STAGES = ("collect", "vae", "mdn", "calibrate", "controller", "iterate", "evaluate")

#: Stream ids of the run's keys and seeds (one per stage; SERIES is unused, kept for stability).
#: RANDOM: the evaluate stage's random baseline; CALIBRATE: the dream calibration's episodes;
#: ITERATE: the rollouts C collects in the rounds of iterative training.
COLLECT, VAE, MDN, CTRL, EVAL, SERIES, RANDOM, CALIBRATE, ITERATE = range(9)
_HOST_GYM = {"car_racing": car_racing.make_gym}

__all__ = [
    "CALIBRATE",
    "COLLECT",
    "CTRL",
    "EVAL",
    "ITERATE",
    "MDN",
    "RANDOM",
    "VAE",
    "MissingInputError",
    "Run",
    "finished",
    "require",
    "STAGES",
    "stage_state",
]


class MissingInputError(config_lib.ConfigError):
    """A stage was asked for before the stage that makes its inputs."""


class Run:
    """Host-side handles of one run: config, resolved settings, task, directories.

    Attributes:
      cfg: the `WorldModelsConfig`; r: its `Resolved` task settings; logdir: run directory.
      spec: the task's `EnvSpec` (64x64x3 frames, action_dim A); jax_env: the `JaxEnv` of a
        pure-JAX task, else None; options: env options (action_repeat, episode_length).
      dcfg: the `dream.DreamConfig` shared by the dream and the real-world agent.

    Raises:
      config.ConfigError: a bad config value.
      checkpoint.ConfigMismatchError: ``logdir`` holds a run with another config.
      ImportError: the task's optional package is missing (names the `worldmodels` extra).
    """

    def __init__(self, cfg: WorldModelsConfig, logdir: str | os.PathLike):
        cfg.validate()
        self.cfg, self.r, self.logdir = cfg, resolved(cfg), Path(logdir)
        self.root = jax.random.key(cfg.seed, impl=cfg.prng_impl)
        self.options: dict[str, Any] = {}
        if cfg.action_repeat:
            self.options["action_repeat"] = cfg.action_repeat
        if cfg.episode_length:
            self.options["episode_length"] = cfg.episode_length
        self.jax_env = None
        if cfg.env in envs.JAX_ENVS:
            self.jax_env = envs.make_jax(cfg.env, **self.options)
            self.spec = self.jax_env.spec
        else:  # builds (and closes) one env: a missing optional package fails here, early
            env = envs.make(cfg.env, seed=cfg.seed, **self.options)
            self.spec, self.options = (
                env.spec,
                {
                    "action_repeat": env.spec.action_repeat,
                    "episode_length": env.spec.episode_length,
                },
            )
            env.close()
        if self.jax_env is not None and self.r.random_policy == "weights":
            raise config_lib.ConfigError(
                f"--random_policy=weights: the released CarRacing data policy runs on host tasks "
                f"(car_racing, doom_take_cover), not on {cfg.env}"
            )
        checkpoint.claim_run_dir(self.logdir, cfg, RESUMABLE_FIELDS)
        self.dcfg = dream.DreamConfig(
            vae=self.r.vae,
            mdn=self.r.mdn,
            action_dim=self.spec.action_dim,
            max_steps=self.spec.agent_steps,
            reward=self.r.reward,
            action_map=self.r.action_map,
            done_rule=cfg.done_rule,
            controller_input=self.r.c_input,
            m_action=cfg.m_action,
        )

    @property
    def final_round(self) -> int:
        """Index of the last round of iterative training (0: one pass, the paper's Doom)."""
        return self.r.iterations - 1

    def rollout_count(self, round: int) -> int:
        """Rollout files M trains on in ``round``: the random ones, then each earlier round's
        (and this round's) C-collected ones, numbered on after them."""
        return self.cfg.rollouts + round * (self.cfg.iteration_rollouts or self.cfg.rollouts)

    def mdn_target(self, round: int) -> int:
        """M's update count at the end of ``round``."""
        return self.cfg.mdn_steps + round * (self.cfg.iteration_mdn_steps or self.cfg.mdn_steps)

    def generation_target(self, round: int) -> int:
        """CMA-ES generations at the end of ``round``."""
        return self.cfg.generations * (round + 1)

    def round_ends(self, stage: str) -> frozenset[int]:
        """Checkpoint steps of ``stage`` that end a round ("mdn": M's update counts,
        "controller": generations; none for the other stages): kept, so the final C can be
        chosen across rounds with the M it acts on."""
        target = {"mdn": self.mdn_target, "controller": self.generation_target}.get(stage)
        rounds = range(self.r.iterations)
        return frozenset() if target is None else frozenset(target(r) for r in rounds)

    def controller_dims(self) -> tuple[int, int, int, bool, bool]:
        """C's shape as `controllers.init` takes it: (Z, H (0 for C on z alone), A, reads M's
        cell state, has a bias)."""
        r = self.r
        hidden = 0 if r.c_input == "z" else r.mdn.hidden
        return r.vae.z_dim, hidden, self.spec.action_dim, r.c_input == "zch", r.c_bias

    def key(self, stream: int, index: int = 0) -> jax.Array:
        """PRNG key ``index`` of stage ``stream``."""
        return jax.random.fold_in(jax.random.fold_in(self.root, stream), index)

    def seed(self, stream: int, index: int) -> int:
        """Env seed ``index`` of stage ``stream`` (an int in [0, 2^31))."""
        return seeding.episode_seed(self.cfg.seed, index, offset=stream * 100_003) % 2**31

    def host_episodes(
        self, seeds: list[int], policy: Any, record: bool, desc: str, progress: bool | None = None
    ) -> list:
        """One host-env episode per seed, in `cfg.workers` processes (`vector_episodes`: a
        worker that dies is restarted and its episode played again with the same seed); a
        progress bar of its own unless ``progress`` is False (default: `cfg.progress`)."""
        make_gym = _HOST_GYM.get(self.cfg.env)
        if make_gym is None:
            from jaxplanet.envs import doom

            make_gym = doom.make_gym
        return vector_episodes(
            make_gym, self.options, seeds, policy, self.cfg.workers, record,
            self.cfg.progress if progress is None else progress,
            desc, name=self.cfg.env,
        )  # fmt: skip


# ----------------------------------------------------------------------------- stage helpers


def stage_state(
    run: Run, name: str, template: dict[str, Any]
) -> tuple[checkpoint.Checkpointer, int, dict[str, Any], resume.Progress]:
    """Restores stage ``name`` and brings its folder back to what the checkpoint covers.

    ``template`` is the stage's state without ``"progress"`` (a `resume.Progress` is stored
    beside it). As for PlaNet and SOLAR (`resume.reconcile`), metric rows written after the
    restored checkpoint (or, with none, every row of an earlier attempt) are set aside under
    ``<stage>/set_aside/<n>/``, so the resumed stage writes each row once.

    Returns:
      (checkpointer, next step, state, progress): the restored ones, or (.., 0, template,
      Progress()) for a fresh start.
    """
    directory = run.logdir / name / "checkpoints"
    ckpt = checkpoint.Checkpointer(directory, max_to_keep=2, keep=run.round_ends(name))
    restored = ckpt.restore({**template, "progress": resume.Progress().as_dict()})
    progress = None if restored is None else resume.Progress.from_dict(restored[1]["progress"])
    resumed = resume.reconcile(run.logdir / name, progress, restored and restored[0], unit="update")
    if resumed.message:
        print(f"{name}: {resumed.message}")
    if restored is None:
        return ckpt, 0, template, resumed.progress
    state = {k: v for k, v in restored[1].items() if k != "progress"}
    return ckpt, restored[0], state, resumed.progress


def finished(run: Run, name: str, steps: int) -> bool:
    """Whether stage ``name`` has a checkpoint at its last step ``steps`` or later (a later
    round of iterative training went on from it)."""
    directory = run.logdir / name / "checkpoints"
    if not directory.is_dir():
        return False
    with checkpoint.Checkpointer(directory, create=False) as ckpt:
        return any(s >= steps for s in ckpt.steps())


def require(run: Run, stage: str, needs: str, ok: bool) -> None:
    """Raises `MissingInputError` naming stage ``needs`` to run before ``stage`` unless ``ok``."""
    if not ok:
        raise MissingInputError(
            f"--stage={stage}: its inputs are missing in {run.logdir}; "
            f"run --stage={needs} first (or --stage=all)"
        )
