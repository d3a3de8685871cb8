"""World Models run configuration and its named presets (Ha & Schmidhuber 2018).

``paper`` is the paper's agent as the authors released it (hardmaru/WorldModelsExperiments,
``doomrnn/`` and ``carracing/``; the table in docs/world_models.md lists what still differs):
10,000 random rollouts; V with z = 32 / 64; M an LSTM of 256 (CarRacing) /
512 (Doom) units with 5 Gaussians per dim; C on [z, h] with a bias (CarRacing) / on [z, c, h]
without (Doom); CMA-ES, population 64, 16 rollouts per candidate. ``quick`` is a CPU-sized
version of ``paper``; ``tiny`` is what the tests use (point_reach, seconds).

Fields that depend on the task (latent size, M's width, heads, schedule and window, reward of the
dream, action mapping, temperature, C's inputs, whether C trains in the dream, how random
rollouts are drawn and kept, the terminal frame) are ``0`` / ``"auto"`` in ``paper`` (``-1`` for
`random_hold_max` and `min_random_length`, whose ``0`` is "off") and are resolved from
`ENV_SETTINGS` by `resolved`. Fields added after runs were made default (in the class) to the
behaviour those runs had, so an old run directory resumes (`checkpoint.claim_run_dir` reads a
missing field as the class default). The reporting fields added since (`random_episodes`,
`calibrate_episodes`) are in `RESUMABLE_FIELDS`: an old run gets the paper's random baseline and
the calibrate stage from its next evaluate / calibrate on.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from jaxplanet.core import config as config_lib
from jaxplanet.worldmodels.mdn_rnn import MDNConfig
from jaxplanet.worldmodels.vae import VAEConfig

__all__ = [
    "ENV_SETTINGS",
    "PRESETS",
    "QUICK_TASKS",
    "RESUMABLE_FIELDS",
    "Resolved",
    "WorldModelsConfig",
    "paper",
    "preset",
    "quick",
    "resolved",
    "tiny",
]


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


#: Settings per task, as the authors released them (``carracing/``, ``doomrnn/``). in_dream:
#: CarRacing's C was evolved in the real environment, take_cover's entirely in the dream.
#: reward_head: CarRacing's released M predicts z only, so its reward head is built only when
#: its C trains in the dream (which needs a reward). mdn_*: M's width, learning-rate schedule
#: (lr_decay per update down to min_lr) and training window (`carracing/rnn_train.py`: whole
#: 1000-frame episodes, constant lr; `doomrnn/rnn_train.py`: 500 steps, 0.99999 decay).
#: c_input / c_bias: C's inputs and bias (`doomrnn/config.py`: 64 + 2 * 512 inputs, no bias).
#: random_hold_max / min_random_length: `doomrnn/extract.py` holds each random action 1..10 steps
#: and keeps episodes of more than 100 frames. terminal_obs: ViZDoom's last observation is blank.
#: random_policy: `carracing/extract.py` collects with a randomly weighted C that drives (uniform
#: actions brake half the time, and the car barely leaves the start), `doomrnn/extract.py` with
#: uniform actions.
ENV_SETTINGS: dict[str, dict[str, Any]] = {
    "car_racing": dict(
        z_dim=32,
        done_head=False,
        reward_head="in_dream",
        reward="head",
        action_map="continuous",
        temperature=1.0,
        in_dream=False,
        random_hold=1,
        random_hold_max=0,
        min_random_length=0,
        terminal_obs="keep",
        mdn_hidden=256,
        mdn_lr_decay=1.0,
        mdn_min_lr=1e-5,
        mdn_seq_len=999,
        c_input="zh",
        c_bias=True,
        random_policy="weights",
    ),
    "doom_take_cover": dict(
        z_dim=64,
        done_head=True,
        reward_head=False,
        reward="survival",
        action_map="take_cover",
        temperature=1.15,
        in_dream=True,
        random_hold=1,
        random_hold_max=10,
        min_random_length=100,
        terminal_obs="mask",
        mdn_hidden=512,
        mdn_lr_decay=0.99999,
        mdn_min_lr=1e-5,
        mdn_seq_len=500,
        c_input="zch",
        c_bias=False,
        random_policy="uniform",
    ),
    "point_reach": dict(
        z_dim=32,
        done_head=False,
        reward_head=True,
        reward="head",
        action_map="continuous",
        temperature=1.0,
        in_dream=True,
        random_hold=5,  # i.i.d. actions barely move the point mass: M would never see motion
        random_hold_max=0,
        min_random_length=0,
        terminal_obs="keep",
        mdn_hidden=256,
        mdn_lr_decay=1.0,
        mdn_min_lr=0.0,
        mdn_seq_len=500,
        c_input="zh",
        c_bias=True,
        random_policy="uniform",
    ),
}


@dataclasses.dataclass(frozen=True)
class WorldModelsConfig:
    """Everything a World Models run depends on (stored as config.json in the run directory)."""

    env: str = _field("doom_take_cover", f"task: {', '.join(ENV_SETTINGS)}")
    seed: int = _field(0, "seed of parameters, rollouts and evolution")
    action_repeat: int = _field(0, "env steps per agent step; 0 = task default")
    episode_length: int = _field(0, "env steps per episode; 0 = task default")
    rollouts: int = _field(10_000, "random rollouts collected for V and M")
    random_hold: int = _field(
        0, "agent steps each random action is held in collection; 0 = task default (paper: 1)"
    )
    random_hold_max: int = _field(
        0,
        "hold each random action k ~ U{1..N} agent steps instead, k drawn anew for each action "
        "(released Doom: 10); 0 = off (the fixed random_hold); -1 = task default (Doom 10, "
        "else off)",
    )
    min_random_length: int = _field(
        0,
        "random rollouts of at most N agent steps are dropped and collected again with a new "
        "seed (released Doom: 100); 0 = keep all; -1 = task default (Doom 100, else 0)",
    )
    random_policy: Literal["auto", "uniform", "weights"] = _field(
        "uniform",
        "the collect stage's policy on host tasks: uniform = uniform actions (held as "
        "random_hold / random_hold_max say); weights = the released CarRacing data policy, per "
        "episode a C with Cauchy(0, s) weights, s ~ U(0, 0.01), on [z, h] of V and M at their "
        "random initialisation (it drives: steer ~ 0, gas ~ 0.5); auto: CarRacing weights, else "
        "uniform",
    )
    terminal_obs: Literal["auto", "keep", "mask"] = _field(
        "keep",
        "a terminated rollout's last observation: keep = a frame like any other; mask = not in "
        "V's frames and never M's z target (the done label stays), for tasks that end on a blank "
        "frame (ViZDoom: all zeros); auto: Doom mask, else keep",
    )
    workers: int = _field(8, "parallel environment processes (AsyncVectorEnv) for host tasks")
    z_dim: int = _field(0, "V's latent size; 0 = paper value (32 CarRacing, 64 Doom)")
    vae_steps: int = _field(100_000, "V's gradient steps")
    vae_batch: int = _field(100, "frames per V batch")
    vae_max_frames: int = _field(2_000_000, "frames of random rollouts loaded to train V")
    mdn_steps: int = _field(4_000, "M's gradient steps")
    mdn_batch: int = _field(100, "sequences per M batch")
    mdn_seq_len: int = _field(
        500, "steps per M training sequence; 0 = task default (500 Doom, 999 CarRacing)"
    )
    mdn_batches: Literal["windows", "streams"] = _field(
        "windows",
        "M's batches: windows = each sequence from a random step of a random episode and a zero "
        "LSTM state; streams = the released Doom M's: the episodes, shuffled each epoch, "
        "concatenated into mdn_batch streams cut into consecutive mdn_seq_len-step chunks, the "
        "LSTM state carried from chunk to chunk and zeroed at each episode's first frame",
    )
    iterations: int = _field(
        1,
        "rounds of the paper's iterative training (Sec. 5); 1 = one pass on random rollouts. "
        "Each further round collects iteration_rollouts real episodes with the round's C "
        "(its raw action plus N(0, iteration_noise^2) noise), trains M iteration_mdn_steps more "
        "updates on every rollout so far and runs `generations` more generations of a fresh "
        "CMA-ES (sigma_init; see iteration_restart) in the new dream (V stays as trained on the "
        "random rollouts)",
    )
    iteration_rollouts: int = _field(
        0, "real episodes collected with C in each round after the first; 0 = `rollouts`"
    )
    iteration_mdn_steps: int = _field(
        0, "M's further updates in each round after the first; 0 = `mdn_steps`"
    )
    iteration_restart: Literal["zero", "last"] = _field(
        "zero",
        "where each later round's fresh CMA-ES starts: zero = C = 0, as in round 0; last = the "
        "last round's chosen C (on Doom seed 1 its saturated actions kept CMA-ES on that policy)",
    )
    iteration_noise: float = _field(
        0.1, "std of the Gaussian noise on C's raw action when it collects M's data"
    )
    population: int = _field(64, "CMA-ES population")
    rollouts_per_candidate: int = _field(16, "episodes per candidate; its score is their mean")
    generations: int = _field(300, "CMA-ES generations")
    sigma_init: float = _field(0.1, "CMA-ES initial step size")
    temperature: float = _field(0.0, "tau of the dream; 0 = paper value (1.15 Doom, else 1)")
    in_dream: Literal["auto", "true", "false"] = _field(
        "auto", "evolve C in the dream (auto: Doom yes, CarRacing no, point_reach yes)"
    )
    done_rule: Literal["sample", "threshold"] = _field(
        "sample",
        "dream's done (M's done head): threshold = done where the logit > 0 (authors' Doom "
        "dream); sample = Bernoulli with the loss's positive weight undone",
    )
    c_input: Literal["auto", "z", "zh", "zch"] = _field(
        "zh",
        "C's input: [z, h], [z, c, h] (M's cell state too) or z alone (the paper's 'V model "
        "only' CarRacing agent); auto: Doom zch, else zh",
    )
    c_bias: Literal["auto", "true", "false"] = _field(
        "true", "C has a bias; auto: Doom no (authors' doomrnn C), else yes"
    )
    m_action: Literal["mapped", "raw"] = _field(
        "mapped",
        "what M reads and random rollouts record: the action after the task's action map, or "
        "C's raw output in [-1, 1] (authors' Doom code; the same for continuous tasks)",
    )
    eval_every: int = _field(
        25,
        "score the CMA-ES mean in the real task every N generations and at the last; the final C "
        "is the mean that scored best (as released); 0 = never (the final C: the last mean)",
    )
    eval_episodes: int = _field(100, "real episodes of the final evaluation (paper: 100)")
    random_episodes: int = _field(
        100,
        "real episodes of the evaluate stage's random baseline: i.i.d. uniform actions, a new one "
        "every agent step (the paper's random policy; paper: 100)",
    )
    calibrate_episodes: int = _field(
        64,
        "episodes per policy (random, held random, constant actions) of the dream calibration, in "
        "the dream and in the real task each; 0 = no calibrate stage",
    )
    video_length: int = _field(300, "agent steps shown in the real-vs-dream video")
    checkpoint_every: int = _field(1000, "checkpoint V and M every N steps (C every generation)")
    progress: bool = _field(True, "show progress bars")
    prng_impl: Literal["threefry2x32", "rbg"] = _field(
        "threefry2x32", "PRNG implementation (rbg compiles much faster on CPU)"
    )
    vae: VAEConfig = dataclasses.field(default_factory=VAEConfig)
    mdn: MDNConfig = dataclasses.field(default_factory=MDNConfig)

    def validate(self) -> None:
        """Raise ``config.ConfigError`` naming the flag and why, for inconsistent values."""
        positive = (
            "rollouts",
            "workers",
            "vae_steps",
            "vae_batch",
            "vae_max_frames",
            "mdn_steps",
            "mdn_batch",
            "population",
            "rollouts_per_candidate",
            "generations",
            "eval_episodes",
            "random_episodes",
            "video_length",
            "checkpoint_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise config_lib.ConfigError(f"--{name}: must be >= 1, got {getattr(self, name)}")
        nonneg = (
            "action_repeat",
            "episode_length",
            "z_dim",
            "eval_every",
            "temperature",
            "calibrate_episodes",
        )
        if self.mdn_seq_len < 0:
            raise config_lib.ConfigError(f"--mdn_seq_len: must be >= 0, got {self.mdn_seq_len}")
        for name in ("hidden", "lr_decay", "min_lr", "forget_bias"):
            if getattr(self.mdn, name) < 0:
                raise config_lib.ConfigError(
                    f"--mdn.{name}: must be >= 0, got {getattr(self.mdn, name)}"
                )
        if self.mdn.grad_clip_mode not in ("norm", "value"):
            raise config_lib.ConfigError(
                f"--mdn.grad_clip_mode: 'norm' or 'value', got {self.mdn.grad_clip_mode!r}"
            )
        for name in (*nonneg, "random_hold"):
            if getattr(self, name) < 0:
                raise config_lib.ConfigError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("random_hold_max", "min_random_length"):
            if getattr(self, name) < -1:
                raise config_lib.ConfigError(
                    f"--{name}: must be >= -1 (-1 = task default), got {getattr(self, name)}"
                )
        if self.env not in ENV_SETTINGS:
            raise config_lib.ConfigError(
                f"--env: World Models runs on {', '.join(ENV_SETTINGS)}; got {self.env!r}"
            )
        if self.iterations < 1:
            raise config_lib.ConfigError(f"--iterations: must be >= 1, got {self.iterations}")
        for name in ("iteration_rollouts", "iteration_mdn_steps", "iteration_noise"):
            if getattr(self, name) < 0:
                raise config_lib.ConfigError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        if self.population < 2:
            raise config_lib.ConfigError("--population: CMA-ES needs at least 2 candidates")
        if self.sigma_init <= 0:
            raise config_lib.ConfigError("--sigma_init: must be > 0")
        if self.vae.kl_tolerance < 0:
            raise config_lib.ConfigError("--vae.kl_tolerance: must be >= 0")


@dataclasses.dataclass(frozen=True)
class Resolved:
    """Task-dependent settings after `resolved` (what the stages use; ``iterations`` is 1
    when C evolves in the real task: iterative training refines a dream)."""

    vae: VAEConfig
    mdn: MDNConfig
    reward: str
    action_map: str
    temperature: float
    in_dream: bool
    random_hold: int
    mdn_seq_len: int = 500
    c_input: str = "zh"
    c_bias: bool = True
    random_hold_max: int = 0
    min_random_length: int = 0
    mask_terminal: bool = False
    iterations: int = 1
    random_policy: str = "uniform"


def resolved(cfg: WorldModelsConfig) -> Resolved:
    """Fills the ``0`` / ``"auto"`` fields from `ENV_SETTINGS`.

    In ``cfg.mdn``, ``hidden = 0`` and ``lr_decay = 0`` mean the task's value (``lr_decay = 0``
    also takes the task's ``min_lr``).
    """
    s = ENV_SETTINGS[cfg.env]
    z_dim = cfg.z_dim or s["z_dim"]
    vae_cfg = dataclasses.replace(cfg.vae, z_dim=z_dim)
    in_dream = s["in_dream"] if cfg.in_dream == "auto" else cfg.in_dream == "true"
    reward_head = in_dream if s["reward_head"] == "in_dream" else s["reward_head"]
    schedule = {}
    if not cfg.mdn.lr_decay:
        schedule = {"lr_decay": s["mdn_lr_decay"], "min_lr": s["mdn_min_lr"]}
    mdn_cfg = dataclasses.replace(
        cfg.mdn,
        z_dim=z_dim,
        hidden=cfg.mdn.hidden or s["mdn_hidden"],
        done_head=s["done_head"],
        reward_head=reward_head,
        **schedule,
    )
    return Resolved(
        vae_cfg,
        mdn_cfg,
        s["reward"],
        s["action_map"],
        cfg.temperature or s["temperature"],
        in_dream,
        cfg.random_hold or s["random_hold"],
        cfg.mdn_seq_len or s["mdn_seq_len"],
        s["c_input"] if cfg.c_input == "auto" else cfg.c_input,
        s["c_bias"] if cfg.c_bias == "auto" else cfg.c_bias == "true",
        random_hold_max=s["random_hold_max"] if cfg.random_hold_max < 0 else cfg.random_hold_max,
        min_random_length=(
            s["min_random_length"] if cfg.min_random_length < 0 else cfg.min_random_length
        ),
        mask_terminal=(s["terminal_obs"] if cfg.terminal_obs == "auto" else cfg.terminal_obs)
        == "mask",
        iterations=cfg.iterations if in_dream else 1,  # the rounds refine a dream
        random_policy=s["random_policy"] if cfg.random_policy == "auto" else cfg.random_policy,
    )


# Fields that may change when a run directory is resumed (reporting and later stages' extent:
# more `iterations` add rounds to a finished run, which then scores its final C again).
RESUMABLE_FIELDS = frozenset(
    {
        "progress",
        "workers",
        "eval_every",
        "eval_episodes",
        "random_episodes",
        "calibrate_episodes",
        "video_length",
        "generations",
        "iterations",
    }
)


#: What ``paper`` (and ``quick``) take from the authors' released code beyond the class defaults.
_RELEASED = dict(
    done_rule="threshold",
    c_input="auto",
    c_bias="auto",
    m_action="raw",
    random_hold_max=-1,
    min_random_length=-1,
    terminal_obs="auto",
    mdn_batches="streams",
    random_policy="auto",
)
_RELEASED_MDN = dict(grad_clip_mode="value", lr_decay=0.0, forget_bias=1.0)


def paper() -> WorldModelsConfig:
    """The paper's agent as released (Doom by default; pass --env=car_racing for CarRacing).

    Beyond the class defaults: M's width, lr schedule and window from the task (Doom: 512 units,
    lr 1e-3 * 0.99999^n down to 1e-5, 500-step chunks; CarRacing: 256, constant, 999),
    gradients clipped by value at 1, forget-gate bias 1 (TF's LSTM); C on [z, c, h] without a
    bias for Doom; the dream's done where M's done logit > 0; M reads C's raw action. Doom's
    random rollouts hold each action k ~ U{1..10} steps, episodes of <= 100 steps are collected
    again, and the blank last frame is never V's input nor M's target; M trains on streams of
    episodes with its LSTM state carried across chunks (every task).
    """
    return WorldModelsConfig(
        mdn_seq_len=0,
        **_RELEASED,
        mdn=MDNConfig(hidden=0, **_RELEASED_MDN),
    )


def quick() -> WorldModelsConfig:
    """A CPU-sized version of ``paper``: Doom's every stage in well under an hour on 2 cores.

    The same agent as ``paper`` (z 64 Doom / 32 CarRacing, 5 Gaussians per dim and the done
    head, tau = 1.15, C's inputs and bias, the dream's done threshold, M reading C's raw action,
    M's clipping by value, lr schedule and forget bias, Doom's held random actions, dropped
    short episodes and masked last frame, M's streams, 100 final real episodes), smaller:
    M's LSTM of 256 units (paper Doom: 512), 600 random rollouts (paper 10,000), V at half
    width (depth 16) for 2,000 updates, M for 1,600 updates of 32 x 100-step chunks, CMA-ES
    with population 32 x 8 rollouts (paper 64 x 16) for 20 generations. The random baseline
    (100 episodes) and the dream calibration (64 episodes per policy) are the class defaults.

    The data and M's updates are set by the calibrate stage's measurements on Doom (seed 0):
    with 200 rollouts and 800 updates the dream over-rated i.i.d. random actions 3.09x and
    pressing left 5.7x (its sampled z lost the fireballs), and C survived 179.9 real steps
    against random's 216.5; with 600 and 1,600 the over-rating fell to 1.78x (left 0.86x) and
    C survived 326.5 against 216.5 (100 real episodes each). On seed 1 that C pressed left
    (174.8 against 199.5), so ``quick`` runs two rounds of the paper's iterative training: 300
    rollouts of C (+ N(0, 0.1^2) noise), 800 more M updates and 20 generations of a CMA-ES from
    C = 0 in the new dream, the final C the best periodic evaluation over both rounds (seed 1:
    round 1's, 545.1 against 199.5; seed 0: round 0's, 326.5 against 216.5).
    """
    return WorldModelsConfig(
        **_RELEASED,
        rollouts=600,
        workers=2,
        vae_steps=2000,
        vae_batch=32,
        vae_max_frames=100_000,
        mdn_steps=1600,
        mdn_batch=32,
        mdn_seq_len=100,
        population=32,
        rollouts_per_candidate=8,
        generations=20,
        iterations=2,
        iteration_rollouts=300,
        iteration_mdn_steps=800,
        eval_every=10,
        eval_episodes=100,
        video_length=200,
        checkpoint_every=200,
        prng_impl="rbg",
        vae=VAEConfig(depth=16, lr=1e-3),
        mdn=MDNConfig(hidden=256, **_RELEASED_MDN),
    )


def tiny() -> WorldModelsConfig:
    """Seconds-long settings for tests (point_reach, short episodes, minute models)."""
    return WorldModelsConfig(
        env="point_reach",
        episode_length=20,
        rollouts=6,
        workers=2,
        z_dim=4,
        vae_steps=4,
        vae_batch=8,
        vae_max_frames=1000,
        mdn_steps=4,
        mdn_batch=4,
        mdn_seq_len=6,
        population=4,
        rollouts_per_candidate=2,
        generations=2,
        eval_every=1,
        eval_episodes=2,
        random_episodes=4,
        calibrate_episodes=4,
        video_length=8,
        checkpoint_every=2,
        progress=False,
        prng_impl="rbg",
        vae=VAEConfig(depth=2),
        mdn=MDNConfig(hidden=8, mixtures=2),
    )


PRESETS = {"paper": paper, "quick": quick, "tiny": tiny}

#: What ``quick`` changes for a task beyond its own (Doom's) sizes. CarRacing's C evolves in the
#: real game, as released: 1,000-step episodes at ~120 steps/s per core with rendering, so
#: quick's 32 x 8 candidates per generation would take ~18 min a generation on 2 cores; here
#: 16 candidates x 1 episode (~1 min) for 24 generations, on 100 rollouts (~7 min). With 16
#: candidates, C reads z alone (the paper's "V model only" agent, 632 +- 251 against the full
#: agent's 906 +- 21): 99 parameters instead of 867.
QUICK_TASKS: dict[str, dict[str, Any]] = {
    "car_racing": dict(
        c_input="z",
        rollouts=100,
        population=16,
        rollouts_per_candidate=1,
        generations=24,
        eval_every=8,
    ),
}


def preset(name: str, env: str | None = None) -> WorldModelsConfig:
    """Config of a named preset for task ``env`` (default: the preset's own task); ``quick``
    takes the task's `QUICK_TASKS` settings. Unknown names list the valid ones."""
    return config_lib.task_preset(PRESETS, name, env, QUICK_TASKS)
