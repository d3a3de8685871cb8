"""SOLAR (Zhang et al., "SOLAR: Deep Structured Representations for Model-Based Reinforcement
Learning", ICML 2019).

One namespace over its model (the names below are re-exported from `model`); the other
sub-modules load on first access (``jaxplanet.solar.agent``).

Model:

* `mniw`: the matrix-normal inverse-Wishart prior and posterior of linear-Gaussian dynamics;
* `lgssm`: structured inference in the latent linear-Gaussian state space model (Kalman
  smoother, FFBS);
* `model`: `ModelConfig`, the conv encoder potentials, MNIW dynamics, quadratic cost and ELBO.

Training loop:

* `agent`: pretrain, then iterate fit -> LQR-FLM policy improvement (`train_and_evaluate`,
  `evaluate_run`);
* `config`: `SolarConfig` and its presets;
* `fit`: the model fits for control (local dynamics, cost);
* `policy`: acting on the filtered latent and one LQR-FLM step;
* `state`: `RunState`, what the loop carries and each checkpoint stores;
* `eval`: goal-reached figures, evaluation episodes and reconstruction videos;
* `report`: the start banner and the end-of-run table.
"""

from jaxplanet import _lazy
from jaxplanet.solar.model import (
    Decoder,
    Encoder,
    ModelConfig,
    SpatialSoftmaxEncoder,
    TrainState,
    cost_matrices,
    decode,
    encode,
    encode_rollouts,
    episode_batch,
    infer,
    init_canvas,
    init_params,
    init_train_state,
    loss,
    make_optimizer,
    per_step,
    plugin,
    predict_cost,
    prior_dynamics,
    svi_stats,
    train_step,
    windows,
)

__all__ = [
    "Decoder",
    "Encoder",
    "ModelConfig",
    "SpatialSoftmaxEncoder",
    "TrainState",
    "cost_matrices",
    "decode",
    "encode",
    "encode_rollouts",
    "episode_batch",
    "infer",
    "init_canvas",
    "init_params",
    "init_train_state",
    "loss",
    "make_optimizer",
    "per_step",
    "plugin",
    "predict_cost",
    "prior_dynamics",
    "svi_stats",
    "train_step",
    "windows",
]

#: Sub-modules, imported on first attribute access (`model`, `lgssm`, `mniw` are imported
#: already).
_MODULES = ["agent", "config", "eval", "fit", "lgssm", "mniw", "model", "policy", "report", "state"]

__getattr__, __dir__ = _lazy.submodules(__name__, _MODULES)
