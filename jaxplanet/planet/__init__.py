"""PlaNet (Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019).

One namespace over its model (the names below are re-exported from `model`, `losses`, `train`
and `planning`); the other sub-modules load on first access (``jaxplanet.planet.agent``).

Model:

* `rssm`: the recurrent state-space model (and the paper's SSM / RNN ablations);
* `model`: `ModelConfig`, the Linen `WorldModel` (conv encoder, RSSM cell, decoder, reward
  head) and the pure functions that apply it (`init`, `encode`, `decode`, `reward`,
  `posterior_step`, `open_loop_predictions`);
* `losses`: the negative ELBO with free nats and latent overshooting (`loss`, `kl_loss`);
* `train`: optimiser and pure `train_step`;
* `planning`: `latent_step` in the planners' `step(state, action, key)` protocol, `plan_start`.

Training loop:

* `agent`: collect -> update -> evaluate -> checkpoint (`train_and_evaluate`; it re-exports
  the pieces below that users call, e.g. `evaluate_run`, `make_functions`);
* `functions`: the jitted act / update / replay functions and the update loop `train`;
* `evaluate`: noise-free evaluation, in training and from a checkpoint (``--mode=eval``);
* `report`: the start banner and the end-of-run table;
* `run_state`: what a run checkpoints and how it reads back;
* `config`: `PlanetConfig` and its presets;
* `acting`: belief update + CEM planning + exploration noise, for one or many environments;
* `collect`: N episodes at once, on the host or on the device;
* `scale`: K seeds x N environments per collection round, over devices;
* `seeds`: K agents in one program (``vmap`` over a seed axis).
"""

from jaxplanet import _lazy
from jaxplanet.planet.losses import kl_loss, loss
from jaxplanet.planet.model import (
    ModelConfig,
    WorldModel,
    decode,
    encode,
    init,
    open_loop_predictions,
    posterior_step,
    reward,
)
from jaxplanet.planet.planning import latent_step, plan_start
from jaxplanet.planet.train import (
    NonFiniteLossError,
    TrainState,
    check_finite,
    init_train_state,
    learning_rate,
    make_optimizer,
    train_step,
)

__all__ = [
    "ModelConfig",
    "NonFiniteLossError",
    "TrainState",
    "WorldModel",
    "check_finite",
    "decode",
    "encode",
    "init",
    "init_train_state",
    "kl_loss",
    "latent_step",
    "learning_rate",
    "loss",
    "make_optimizer",
    "open_loop_predictions",
    "plan_start",
    "posterior_step",
    "reward",
    "train_step",
]

#: Sub-modules, imported on first attribute access (those above are imported already).
_MODULES = [
    "acting",
    "agent",
    "collect",
    "config",
    "evaluate",
    "functions",
    "losses",
    "model",
    "planning",
    "report",
    "rssm",
    "run_state",
    "scale",
    "seeds",
    "train",
]

__getattr__, __dir__ = _lazy.submodules(__name__, _MODULES)
