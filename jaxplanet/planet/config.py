"""PlaNet run configuration and its named presets.

``paper`` holds the published hyperparameters (Hafner et al. 2019, Sec. 5 and App. A);
``quick`` is a CPU-sized run; ``tiny`` is what the tests use.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from jaxplanet.core import config as config_lib
from jaxplanet.planet import ModelConfig
from jaxplanet.planners.cem import CEMConfig

__all__ = [
    "PRESETS",
    "RESUMABLE_FIELDS",
    "PlannerConfig",
    "PlanetConfig",
    "paper",
    "preset",
    "prng_for_seeds",
    "quick",
    "tiny",
]


@dataclasses.dataclass(frozen=True)
class PlannerConfig(CEMConfig):
    """CEM settings plus how the learned model is rolled out while planning.

    Defaults are the released code's: returns discounted by 0.99, refit std sqrt(var + 1e-6).
    """

    var_eps: float = dataclasses.field(
        default=1e-6, metadata={"help": "refit std = sqrt(var + var_eps) (released: 1e-6)"}
    )
    discount: float = dataclasses.field(
        default=0.99, metadata={"help": "discount of imagined rewards (released: 0.99)"}
    )

    sample: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "sample the belief and the prior at each imagined step (paper); "
            "false follows the prior means"
        },
    )


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class PlanetConfig:
    """Everything a PlaNet run depends on (the run directory stores it as config.json)."""

    env: str = _field("walker_walk", "task name (see jaxplanet.envs.names())")
    seed: int = _field(0, "seed of parameters, planning noise and environment resets")
    action_repeat: int = _field(0, "simulator steps per action; 0 = paper value for the task")
    episode_length: int = _field(0, "env steps per episode; 0 = task default (1000 for dm_control)")
    episodes: int = _field(1000, "total episodes to collect, seed episodes included")
    seed_episodes: int = _field(5, "random-action episodes collected before training")
    train_steps: int = _field(100, "gradient steps per collected episode (collect interval C)")
    batch_size: int = _field(50, "sequences per training batch")
    seq_length: int = _field(50, "steps per training sequence")
    exploration_noise: float = _field(0.3, "std of Gaussian noise added to planned actions")
    eval_every: int = _field(10, "evaluate every N episodes (0 = never)")
    eval_episodes: int = _field(1, "episodes per evaluation (no exploration noise)")
    video: bool = _field(True, "write eval videos (real frames beside open-loop predictions)")
    video_context: int = _field(5, "observed steps before open-loop prediction in eval videos")
    video_length: int = _field(50, "agent steps shown in an eval video")
    replay_bytes: float = _field(6.5e9, "replay capacity in bytes (uint8 frames + actions)")
    replay_device: Literal["auto", "host", "device"] = _field(
        "auto",
        "where replay lives: host memory (sampled there, batches prefetched to the device), the "
        "device, or auto (host on GPU/TPU, device on CPU)",
    )
    checkpoint_every: int = _field(1, "checkpoint every N episodes")
    keep_checkpoints: int = _field(3, "number of checkpoints kept")
    debug_nans: bool = _field(False, "enable jax_debug_nans (slow; pinpoints the first NaN)")
    progress: bool = _field(True, "show a progress bar")
    prng_impl: Literal["threefry2x32", "rbg"] = _field(
        "threefry2x32", "PRNG implementation (rbg compiles much faster on CPU)"
    )
    num_envs: int = _field(
        1,
        "episodes collected at once per round, with one batched planner call per step; "
        "train_steps updates per collected episode are made before each round",
    )
    num_seeds: int = _field(
        1,
        "independent agents (seeds seed .. seed+K-1) trained in one program by vmap; seed k "
        "writes to logdir/seed_k",
    )
    devices: int = _field(
        1, "devices for data-parallel training and sharded planning (0 = all of jax.devices())"
    )
    collect: Literal["host", "device"] = _field(
        "host",
        "where episodes are collected: a host loop over the env, or (pure-JAX tasks such as "
        "point_reach) one lax.scan of env step + planning on the device",
    )
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)

    def validate(self) -> None:
        """Raise ``config.ConfigError`` naming the flag and why, for inconsistent values."""
        positive = ("episodes", "train_steps", "batch_size", "seq_length", "eval_episodes")
        for name in positive:
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(f"--{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("seed_episodes", "eval_every", "action_repeat", "episode_length"):
            if getattr(self, name) < 0:
                raise config_lib.ConfigError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        if self.seed_episodes < 1:
            raise config_lib.ConfigError("--seed_episodes: must be >= 1 (training needs data)")
        if self.seed_episodes >= self.episodes:
            raise config_lib.ConfigError(
                f"--episodes: must exceed --seed_episodes ({self.seed_episodes}), "
                f"got {self.episodes}"
            )
        if self.exploration_noise < 0:
            raise config_lib.ConfigError("--exploration_noise: must be >= 0")
        if self.replay_bytes <= 0:
            raise config_lib.ConfigError("--replay_bytes: must be > 0")
        if not 1 <= self.video_context < self.video_length:
            raise config_lib.ConfigError("--video_context: must be in [1, video_length)")
        if self.model.variant not in ("rssm", "ssm", "rnn"):
            raise config_lib.ConfigError("--model.variant: must be rssm, ssm or rnn")
        if self.planner.top_k > self.planner.candidates:
            raise config_lib.ConfigError("--planner.top_k: must be <= --planner.candidates")
        self._validate_scale()

    def _validate_scale(self) -> None:
        """Checks of --num_envs, --num_seeds, --devices and --collect."""
        for name in ("num_envs", "num_seeds"):
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(f"--{name}: must be >= 1, got {getattr(self, name)}")
        if self.devices < 0:
            raise config_lib.ConfigError(f"--devices: must be >= 0 (0 = all), got {self.devices}")
        n = self.num_envs
        for name in ("episodes", "seed_episodes"):
            if getattr(self, name) % n:
                raise config_lib.ConfigError(
                    f"--{name}: must be a multiple of --num_envs={n} (episodes are collected "
                    f"in rounds of {n}), got {getattr(self, name)}"
                )
        if self.num_seeds > 1 and self.prng_impl != "threefry2x32":
            raise config_lib.ConfigError(
                f"--num_seeds={self.num_seeds}: needs --prng_impl=threefry2x32 (rbg keys draw "
                "other numbers under vmap, so seed k would not equal a single run with seed k)"
            )
        if self.devices != 1 and self.num_seeds > 1:
            raise config_lib.ConfigError(
                "--devices: sharding over devices is for one seed; with --num_seeds > 1 "
                "use --devices=1 (the seeds are vmapped on one device)"
            )
        if self.devices != 1 and self.collect == "device":
            raise config_lib.ConfigError(
                "--collect=device: runs the collection scan on one device; use --devices=1"
            )


def prng_for_seeds(base: PlanetConfig, overrides: dict[str, str]) -> dict[str, str]:
    """``overrides`` plus ``prng_impl=threefry2x32`` when they train several seeds of a ``base``
    (a preset) that uses rbg.

    rbg keys draw other numbers under ``jax.vmap``, so K vmapped seeds need threefry for seed k
    to equal a single run of seed k (the quick and tiny presets pick rbg only because it
    compiles faster). A ``--prng_impl`` the user gave is kept (and refused by
    `PlanetConfig.validate` if it is rbg). Prints one line when it adds the switch.
    """
    num_seeds = int(overrides.get("num_seeds", base.num_seeds))
    if num_seeds > 1 and base.prng_impl != "threefry2x32" and "prng_impl" not in overrides:
        print(
            f"--num_seeds={num_seeds}: PRNG threefry2x32 instead of the preset's "
            f"{base.prng_impl} (which draws other numbers under vmap); seed k equals a single "
            "run with --prng_impl=threefry2x32"
        )
        return {**overrides, "prng_impl": "threefry2x32"}
    return overrides


# Fields that may change when a run directory is resumed (more episodes, other reporting).
RESUMABLE_FIELDS = frozenset(
    {
        "episodes",
        "eval_every",
        "eval_episodes",
        "video",
        "progress",
        "debug_nans",
        "keep_checkpoints",
        "devices",
    }
)


def paper() -> PlanetConfig:
    """The agent of the paper's Table 1 as its authors released it (the defaults).

    RSSM 200/30, batch 50 x 50, C = 100, Adam 1e-3 (eps 1e-4, clip 1000, lr ramped over 10,000
    updates), reward loss scale 10, free nats 3, no overshooting; CEM 12/10/1000/100 with returns
    discounted by 0.99 and refit std sqrt(var + 1e-6), sampling the belief and the prior.
    """
    return PlanetConfig()


def quick() -> PlanetConfig:
    """A CPU-sized run: the paper's agent with a smaller model and planner, 40 episodes.

    Two settings follow from measurements on point_reach, seed 0 (`experiments.planet_model_check`
    scores 200 action sequences from 64 states by the model and by the true simulator):

    * 1 free nat instead of 3: with a 16-dim stochastic state the mean KL sat under the 3-nat
      floor (~2.7), where the prior gets no gradient; after 30 episodes of C = 40 the rank
      correlation of predicted vs true returns was 0.07 (the planner's pick no better than an
      average sequence) with 3 free nats and 0.26 with 1;
    * the paper's C = 100 updates per episode instead of 40: with 40 the image NLL was still 28
      after 1,000 updates (episode 30) against 10 at episode 21 with 100, and the evaluation at
      episode 30 was 13.7 against 34.6 (random 10.7, standing still 22, oracle 92).

    40 episodes keep point_reach within ~20 min on 2 idle cores (the updates are ~90 % of the
    time, `time/*` in metrics.jsonl); the last two evaluations (episodes 30, 40) averaged 62.3,
    59.8 and 52.0 on seeds 0-2 (mean 58.0, 0.63 x the oracle). ``--episodes=60`` goes on to
    70.8 / 80.3 (seeds 0, 1; mean of episodes 50 and 60).
    """
    return PlanetConfig(
        episodes=40,
        seed_episodes=5,
        train_steps=100,
        batch_size=16,
        seq_length=25,
        eval_every=10,
        eval_episodes=5,
        prng_impl="rbg",
        model=ModelConfig(
            depth=8,
            deter=64,
            stoch=16,
            hidden=64,
            reward_hidden=64,
            free_nats=1.0,
            lr=1e-3,
            lr_warmup=100,
        ),
        planner=PlannerConfig(horizon=10, iterations=5, candidates=200, top_k=20),
    )


def tiny() -> PlanetConfig:
    """Seconds-long settings for tests (point_reach, short episodes, minute models)."""
    return PlanetConfig(
        env="point_reach",
        episodes=4,
        seed_episodes=2,
        train_steps=3,
        batch_size=4,
        seq_length=8,
        episode_length=40,
        eval_every=2,
        video_length=10,
        video_context=3,
        replay_bytes=2e7,
        progress=False,
        prng_impl="rbg",
        model=ModelConfig(depth=2, deter=8, stoch=4, hidden=8, reward_hidden=8, lr_warmup=0),
        planner=PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4),
    )


PRESETS = {"paper": paper, "quick": quick, "tiny": tiny}


def preset(name: str) -> PlanetConfig:
    """Config of a named preset; unknown names list the valid ones."""
    return config_lib.from_preset(PRESETS, name)
