"""World Models (Ha & Schmidhuber, "World Models", 2018): sub-modules load on first access.

Models:

* `vae`: V, the convolutional VAE;
* `mdn_rnn`: M, the MDN-RNN;
* `controllers`: C and its evolution by CMA-ES (evosax, optional);
* `dream`: M as a pure-JAX environment (C evolves in it).

Training loop (one stage per module, run by `agent`):

* `agent`: the pipeline collect -> V -> M -> calibrate -> C -> iterate -> evaluate
  (`train_and_evaluate`, `evaluate_run`);
* `config`: `WorldModelsConfig` and its presets;
* `run`: one run's task, directory and seeds;
* `policies`: the policies played in host tasks (random data, open-loop, V + M + C);
* `data`: random rollouts and V's z-sequences;
* `train`: the V and M stages;
* `calibrate`: does the dream rank simple policies as the real task does;
* `evolve`: the controller and evaluate stages;
* `iterate`: iterative training (the paper's Sec. 5);
* `report`: the start banners and the end-of-run table.
"""

from __future__ import annotations

from jaxplanet import _lazy

__all__ = [
    "agent",
    "calibrate",
    "config",
    "controllers",
    "data",
    "dream",
    "evolve",
    "iterate",
    "mdn_rnn",
    "policies",
    "report",
    "run",
    "train",
    "vae",
]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)
