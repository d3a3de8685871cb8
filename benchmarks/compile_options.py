"""Which XLA compile options the PlaNet agent's act and update should use
(`jaxplanet.core.compile`).

Builds the agent's own jitted functions (`planet.agent.make_functions`) at the quick preset's
size, lowers each once and compiles it with every `jaxplanet.core.compile.CPU_VARIANTS` setting
(which ops XLA:CPU hands to YNNPACK), then times the variants alternately in one process:
every round times each variant once (``calls`` calls, the variants' order rotating from round
to round), so that all of them see the same machine load. Reported per variant: median seconds
per call and the median over rounds of its seconds over the chosen variant's
(`jaxplanet.core.compile.CHOICE`) in the same round, > 1 = slower than the choice.

    python -m benchmarks.compile_options                        # act + update, quick size
    python -m benchmarks.compile_options --items act,open_loop --repeats 9

Items: ``act`` (one agent step for one env: belief update + CEM), ``act_batch`` (the batched
planner of ``--num_envs`` > 1, `planet.scale.make_act`, ``--envs`` beliefs),
``update`` (fused replay sample + train step, replay on the device as on CPU) and
``open_loop`` (the eval video's model frames).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxplanet.core import compile as compile_lib

ITEMS = ("act", "act_batch", "update", "open_loop")
KIND = {"act": "act", "act_batch": "act", "update": "update", "open_loop": "update"}


def agent_config(preset: str = "quick") -> Any:
    """The agent config measured: a preset (default quick) as the agent runs it."""
    from jaxplanet.planet import config as planet_config

    return planet_config.preset(preset)


def items(
    cfg: Any, a: int, names: Sequence[str], envs: int = 4
) -> dict[str, tuple[Any, tuple, bool]]:
    """``name -> (agent's jitted function, example arguments, donates its first argument)``."""
    from jaxplanet.planet import agent, rssm
    from jaxplanet.planet import scale as planet_scale

    fns = agent.make_functions(cfg, a)
    state = agent.init_train_state(cfg, agent.root_key(cfg), a)
    params, mcfg, key = state.params, cfg.model, jax.random.key(1, impl=cfg.prng_impl)
    rng = np.random.default_rng(1)
    noise = cfg.exploration_noise  # a Python float, as the agent passes it
    out: dict[str, tuple[Any, tuple, bool]] = {}
    for name in names:
        if name == "act":
            obs = jnp.asarray(rng.integers(0, 256, (64, 64, 3), np.uint8))
            args = (params, rssm.initial_state(mcfg), jnp.zeros(a), obs, jnp.bool_(False))
            out[name] = (fns.act, (*args, key, noise), False)
        elif name == "act_batch":
            obs = jnp.asarray(rng.integers(0, 256, (envs, 64, 64, 3), np.uint8))
            belief = rssm.initial_state(mcfg, (envs,))
            args = (params, belief, jnp.zeros((envs, a)), obs, jnp.zeros(envs, bool))
            keys = jax.random.split(key, envs)
            out[name] = (planet_scale.make_act(cfg, a), (*args, keys, noise), False)
        elif name == "update":
            fresh = agent.init_train_state(cfg, agent.root_key(cfg), a)  # donated: own copy
            out[name] = (fns.update, (fresh, common.random_replay(a, 4, 101), key), True)
        elif name == "open_loop":
            t = cfg.video_length
            batch = {
                "obs": jnp.asarray(rng.integers(0, 256, (1, t, 64, 64, 3), np.uint8)),
                "action": jnp.zeros((1, t, a)),
                "is_first": jnp.zeros((1, t), bool).at[:, 0].set(True),
            }
            out[name] = (fns.open_loop, (params, batch, None), False)
        else:
            raise ValueError(f"unknown item {name!r}; expected one of {ITEMS}")
    return out


def _caller(compiled: Any, holder: list, donates: bool) -> Callable[[], Any]:
    """A no-argument call of ``compiled`` on ``holder``'s arguments; a donated first argument
    is threaded through (``holder`` is shared by the variants, which all donate it)."""

    def call() -> Any:
        out = compiled(*holder)
        if donates:
            holder[0] = out[0]
        return jax.block_until_ready(out)

    return call


def compare(
    fn: Any, args: tuple, donates: bool, variants: dict[str, dict], rounds: int, warmup: int
) -> dict[str, Any]:
    """Each variant compiled from one lowering of ``fn``, timed alternately over ``rounds``."""
    lowered = fn.lower(*args)
    holder = list(args)
    calls, compile_seconds = {}, {}
    for name, options in variants.items():
        start = time.perf_counter()
        compiled = lowered.compile(compiler_options=dict(options))
        compile_seconds[name] = time.perf_counter() - start
        calls[name] = _caller(compiled, holder, donates)
    for call in calls.values():
        for _ in range(max(warmup, 1)):
            call()
    start = time.perf_counter()
    next(iter(calls.values()))()
    repeat = max(1, round(0.3 / max(time.perf_counter() - start, 1e-6)))  # ~0.3 s per sample
    names = list(calls)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(repeat):
                calls[name]()
            seconds[name].append((time.perf_counter() - start) / repeat)
    return {"seconds": seconds, "calls_per_sample": repeat, "compile_seconds": compile_seconds}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; prints one line per item and variant, returns the JSON record."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="agent preset whose sizes are used")
    parser.add_argument("--action_dim", type=int, default=2, help="point_reach: 2")
    parser.add_argument("--items", default="act,update", help="comma-separated, of " + str(ITEMS))
    parser.add_argument("--envs", type=int, default=4, help="beliefs of act_batch")
    parser.set_defaults(repeats=7)
    args = common.parse(parser, argv)
    names = [n for n in args.items.split(",") if n]
    cfg = agent_config(args.preset)
    backend = jax.default_backend()
    variants = compile_lib.CPU_VARIANTS if backend == "cpu" else {"xla_default": {}}
    record: dict[str, Any] = {
        "benchmark": "compile_options",
        **common.environment(),
        "preset": args.preset,
        "action_dim": args.action_dim,
        "variants": variants,
        "choice": dict(compile_lib.CHOICE),
        "items": {},
    }
    for name, (fn, fn_args, donates) in items(cfg, args.action_dim, names, args.envs).items():
        result = compare(fn, fn_args, donates, variants, args.repeats, args.warmup)
        chosen = compile_lib.CHOICE[KIND[name]] if backend == "cpu" else "xla_default"
        base = result["seconds"][chosen]
        for variant, secs in result["seconds"].items():
            ratio = statistics.median(s / b for s, b in zip(secs, base, strict=True))
            result.setdefault("ratio_to_choice", {})[variant] = ratio
            result.setdefault("seconds_median", {})[variant] = statistics.median(secs)
            mark = " (choice)" if variant == chosen else ""
            print(
                f"{name:10s} {variant:12s} {statistics.median(secs) * 1e3:9.2f} ms/call  "
                f"x{ratio:.3f} of {chosen}{mark}",
                flush=True,
            )
        result["fastest"] = min(result["seconds_median"], key=result["seconds_median"].get)
        record["items"][name] = result
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()
