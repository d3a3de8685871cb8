"""PlaNet (Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019).

One namespace over its parts, each in its own module:

* `model`: `ModelConfig`, the Linen `WorldModel` (conv encoder, RSSM cell, decoder, reward
  head) and the pure functions that apply it (`init`, `encode`, `decode`, `reward`,
  `posterior_step`, `open_loop_predictions`);
* `losses`: the negative ELBO with free nats and latent overshooting (`loss`, `kl_loss`);
* `train`: optimiser and pure `train_step`;
* `planning`: `latent_step` in the planners' `step(state, action, key)` protocol, `plan_start`.
"""

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
