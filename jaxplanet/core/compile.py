"""The XLA compile options of the agents' jitted functions: one helper, one choice per kind.

Every jitted function of the PlaNet and SOLAR agents that sets XLA options takes them from
`compiler_options(kind)`, and the benchmarks time those same functions, so a benchmark measures
what the agent runs:

* ``"act"``: the agent's step, belief update (conv encoder on one frame) + CEM planning over the
  RSSM prior (`planet.agent.make_functions(...).act`, the batched
  `planet.scale.make_act`, ``--collect=device`` collection); timed by
  ``benchmarks/planning.py`` (and ``benchmarks/scaling.py``);
* ``"update"``: the training step, ELBO + Adam on a batch of sequences (``.update``,
  ``.update_batch``, also the eval video's ``.open_loop``); timed by ``benchmarks/train.py``;
* ``"solar"``: every jitted function of the SOLAR agent (`solar.policy.make_functions`).

Use as ``jax.jit(fn, compiler_options=compiler_options("act") or None)`` (or pass the dict to
``jax.jit(fn).lower(...).compile(compiler_options=...)``).

On XLA:CPU (jax 0.10.2) the option that matters is which ops go to YNNPACK
(``xla_cpu_experimental_ynn_fusion_type``); by default fp32 dots, convolutions and reductions
do. `CPU_VARIANTS` are the settings compared; `CHOICE` is the one each kind uses, measured with

    python -m benchmarks.compile_options --items act,act_batch,update,open_loop --repeats 9

which compiles the agent's own functions at the quick preset's size (A = 2, point_reach) once
per variant (from one lowering) and times them alternately in one process. Seconds relative to
"xla_default" for act, to "ynn_no_conv" for update (median over rounds of the per-round ratio;
> 1 is slower), one figure per run (runs of 7, 9, 15, 7 and 25 rounds; not every item in every
run) on a 2-core AVX-512 CPU shared with a training run (load ~5-7: single runs scatter by
~10 %; `--repeats 25` for act settles it):

    item (quick size)             xla_default     ynn_no_conv               no_ynn
    act, 1 env (~25-40 ms)        1               1.05 .98 1.00 1.02 1.01   1.16 1.07 1.12 .97 1.13
    act, 4 envs (make_act)        1               1.14 1.03 1.01            1.03 1.07 1.09
    update, 16 x 25 (~0.7-1.3 s)  1.44 1.49 1.15  1                         1.03 1.12 1.07
    open_loop, 1 x 50 (~9 ms)     1.02            1                         1.06

(in the 25-round run "no_ynn" beat "xla_default" in 5 of 25 rounds for act, 6 of 25 for 4
envs). Hence update: "ynn_no_conv" (Eigen convolutions, YNNPACK dots; the conv gradients
dominate, see `jaxplanet.nn.convs`); act: "ynn_no_conv" too, as before this helper existed: it
ties with "xla_default" within the scatter (0.98-1.05), and keeping it keeps every measured
run's numbers reproducible (a different dot library may change the last bits, and planning
amplifies them); open_loop, where no difference shows, follows the update. At the paper's
size (1000 candidates, RSSM 200/30, A = 6; ``--preset paper --action_dim 6 --items act``,
one run of 7 rounds, same load) the act ranks the other way: "no_ynn" 0.91, "ynn_no_conv"
1.03 of "xla_default".

Elsewhere than on CPU, or where the installed XLA does not know the option, the options are
``{}`` (XLA's defaults).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["CHOICE", "CPU_VARIANTS", "KINDS", "YNN_FUSION_TYPE", "compiler_options"]

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
_DOT = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
_CONV = "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
_REDUCE = "LIBRARY_FUSION_TYPE_REDUCE"

# XLA:CPU settings compared by benchmarks/compile_options.py. "xla_default" spells out XLA's
# default (same compiled program as no option; tests/core/test_compile.py checks) so that it can
# override another setting of a function already jitted with options.
CPU_VARIANTS: dict[str, dict[str, str]] = {
    "xla_default": {YNN_FUSION_TYPE: f"{_DOT},{_CONV},{_REDUCE}"},  # YNNPACK dots, convs, reduce
    "ynn_no_conv": {YNN_FUSION_TYPE: f"{_DOT},{_REDUCE}"},  # Eigen convolutions, YNNPACK dots
    "no_ynn": {YNN_FUSION_TYPE: ""},  # XLA's own (Eigen) dots and convolutions
}

KINDS = ("act", "update", "solar")
# "solar": every jitted SOLAR function, with XLA's defaults (spelled out), under which the
# documented SOLAR runs were measured. A known XLA:CPU hazard: the SOLAR train step deadlocked
# during reacher pretraining on a 2-core CPU (all threads idle, the next call waiting on a
# semaphore) with "ynn_no_conv" at latent 10, and with these defaults in two 50-step reacher
# configurations with a velocity half (not the quick preset, which ran with them; docs/solar.md).
# "no_ynn" ran those configurations, but changes the numbers (nav2d seed 0 then ends 0/10
# instead of 10/10), so it is the workaround, not the choice:
# XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=
CHOICE: dict[str, str] = {"act": "ynn_no_conv", "update": "ynn_no_conv", "solar": "xla_default"}


@functools.cache
def _supported(backend: str, items: tuple[tuple[str, str], ...]) -> bool:
    try:
        x = jax.device_put(jnp.ones((2, 2)), jax.local_devices(backend=backend)[0])
        jax.jit(jnp.matmul, compiler_options=dict(items))(x, x).block_until_ready()
    except Exception:  # an XLA build that does not know the option
        return False
    return True


def compiler_options(kind: str, backend: str | None = None) -> dict[str, str]:
    """XLA compile options of the agent's jitted ``kind`` function (``"act"`` or ``"update"``).

    Args:
      kind: one of `KINDS`.
      backend: the backend compiled for (default: JAX's default backend).

    Returns:
      A new dict: on CPU the `CPU_VARIANTS` entry `CHOICE` names for ``kind``; ``{}`` on other
      backends or where the installed XLA rejects the option.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}
    options = CPU_VARIANTS[CHOICE[kind]]
    return dict(options) if _supported(backend, tuple(sorted(options.items()))) else {}
