"""Run machinery shared by the three systems (sub-modules load on first access).

* `config`: frozen dataclass configs, presets and typed overrides;
* `replay`: functional uint8 episodic replay (jittable add/sample, episodes on disk);
* `episodes`: running a policy in a host environment (`run_episode`, `random_policy`);
* `checkpoint`: orbax checkpoints of a run and the guard against resuming with another config;
* `resume`: what a resumed run has done, decided by its checkpoint;
* `logging`: JSON-lines metrics, TensorBoard, videos, progress bar;
* `console`: start banner, progress line, Ctrl-C, end summary;
* `plot`: learning curves from run directories;
* `compare`: runs of different configs side by side (a curve and a table row per config);
* `video`: labelled video frames;
* `timing`: wall and CPU seconds per phase;
* `seeding`: env reset seeds of training and evaluation episodes;
* `compile`: the XLA compile options of the agents' jitted functions;
* `parallel`: meshes, sharded training and planning, multi-host.
"""

from __future__ import annotations

from jaxplanet import _lazy

__all__ = [
    "checkpoint",
    "compare",
    "compile",
    "config",
    "console",
    "episodes",
    "logging",
    "parallel",
    "plot",
    "replay",
    "resume",
    "seeding",
    "timing",
    "video",
]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)
