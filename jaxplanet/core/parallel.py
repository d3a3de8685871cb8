"""Many devices and many hosts with JAX's own runtime: a 1-D `Mesh`, `NamedSharding` helpers,
data-parallel training and batched planning sharded over devices.

One code path for 1 to n devices: every function here builds the same jitted program and only
the mesh's size changes, so a run on one device is the n = 1 case of the sharded one.

* Data-parallel training (`shard_train_step`): the batch axis (leading axis of every leaf of
  the batch, [B, T, ...]) is split over the mesh's ``"data"`` axis, parameters and optimiser
  state are replicated; XLA inserts the gradient all-reduce. ``B`` must divide by the number
  of devices.
* Batched planning (`shard_batched`, `shard_plan`): beliefs, keys and any other per-env input
  [N, ...] are split over the devices, parameters replicated; each device plans its own
  beliefs with no communication (``jax.shard_map``), so results equal the unsharded call for
  the same keys. ``N`` must divide by the number of devices.

Multi-host (``jax.distributed``): start one process per host (or several on one machine for a
test) with the same coordinator and a distinct process id, call `initialize_distributed`
BEFORE any other JAX call, then build the mesh over ``jax.devices()`` (all hosts' devices) and
feed each process's part of a global batch with `host_local_to_global`. Recipe, two processes
on one machine with two CPU devices each::

    # process 0                                     # process 1
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python train.py \\
        --coordinator=127.0.0.1:23456 --num_processes=2 --process_id=0   # (1 on the other)

    from jaxplanet import parallel
    parallel.initialize_distributed("127.0.0.1:23456", num_processes=2, process_id=0)
    mesh = parallel.make_mesh()            # 4 devices over both processes
    step = parallel.shard_train_step(fn, mesh)
    batch = parallel.host_local_to_global(local_batch, mesh)   # local part [B / 2, ...]

On GPU/TPU clusters with a scheduler (Slurm, Cloud TPU) ``initialize_distributed()`` with no
arguments lets JAX detect all three values. On CPU the cross-process collectives use gloo
(set here). Tested in tests/core/test_parallel.py with two processes on one machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS = "data"

__all__ = [
    "AXIS",
    "DistributedInfo",
    "batch_sharding",
    "check_divisible",
    "host_local_to_global",
    "initialize_distributed",
    "make_mesh",
    "replicate",
    "replicated",
    "shard_batch",
    "shard_batched",
    "shard_plan",
    "shard_train_step",
]


def make_mesh(devices: int | Sequence[jax.Device] | None = None, axis_name: str = AXIS) -> Mesh:
    """A 1-D mesh named ``axis_name`` over ``devices``.

    Args:
      devices: None for all of ``jax.devices()`` (every host's, after
        `initialize_distributed`), an int n for the first n of them, or explicit devices.
      axis_name: the mesh axis name that batch/env axes are sharded over.

    Returns:
      ``Mesh`` of shape [n].

    Raises:
      ValueError: n < 1 or more devices than available (the message names ``--devices``).
    """
    available = jax.devices()
    if devices is None:
        chosen = list(available)
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"--devices: must be in [1, {len(available)}] (devices available: "
                f"{len(available)} x {available[0].platform}), got {devices}"
            )
        chosen = list(available[:devices])
    else:
        chosen = list(devices)
        if not chosen:
            raise ValueError("--devices: an empty device list")
    return Mesh(np.asarray(chosen, dtype=object), (axis_name,))


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    """Sharding that splits array axis ``axis`` over the mesh (the others replicated)."""
    return NamedSharding(mesh, P(*([None] * axis), mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding that keeps a full copy of an array on every device of the mesh."""
    return NamedSharding(mesh, P())


def check_divisible(tree: Any, mesh: Mesh, what: str = "batch", axis: int = 0) -> None:
    """Raise ValueError unless every leaf's axis ``axis`` divides by the mesh size."""
    n = mesh.devices.size
    for leaf in jax.tree.leaves(tree):
        shape = np.shape(leaf)
        if len(shape) <= axis or shape[axis] % n:
            raise ValueError(
                f"{what}: axis {axis} of shape {shape} must divide by the {n} devices of the "
                "mesh (--devices)"
            )


def shard_batch(tree: Any, mesh: Mesh, axis: int = 0) -> Any:
    """Put every leaf of ``tree`` on the mesh, split along ``axis`` (leaves [..., N, ...])."""
    check_divisible(tree, mesh, axis=axis)
    return jax.device_put(tree, batch_sharding(mesh, axis))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put a full copy of every leaf of ``tree`` on each device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def host_local_to_global(tree: Any, mesh: Mesh) -> Any:
    """Global batch arrays from each process's part (multi-host data loading).

    Every process passes its own leaves [N / processes, ...]; the result is a global array
    [N, ...] split over the mesh (process i's rows come after process i - 1's). On one
    process this is `shard_batch`.
    """
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), tree)


def shard_train_step(
    train_step_fn: Callable[[Any, Any, jax.Array], tuple[Any, Any]],
    mesh: Mesh,
    donate: bool = False,
    compiler_options: dict[str, Any] | None = None,
    batch_axis: int = 0,
) -> Callable[[Any, Any, jax.Array], tuple[Any, Any]]:
    """Data-parallel ``train_step_fn(state, batch, key) -> (state, metrics)``, jitted.

    The batch (every leaf [B, ...], or [..., B, ...] with B at ``batch_axis``) is split over
    the mesh along B; ``state`` (params,
    optimiser), ``key`` and the outputs are replicated. Bind the model config first, e.g.
    ``lambda s, b, k: planet.train_step(s, cfg, b, k)``. Inputs may live anywhere: jit moves
    them to the given shardings (use `shard_batch` / `replicate` to place them ahead).

    Args:
      train_step_fn: the pure update.
      mesh: 1-D mesh (`make_mesh`).
      donate: donate the old state's buffers.
      compiler_options: XLA options for the compiled step.
      batch_axis: where B is in the batch's leaves (1 behind a seed axis).

    Returns:
      The jitted step with the same signature.
    """
    rep, split = replicated(mesh), batch_sharding(mesh, batch_axis)
    return jax.jit(
        train_step_fn,
        in_shardings=(rep, split, rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,) if donate else (),
        compiler_options=compiler_options or None,
    )


def shard_batched(
    fn: Callable[..., Any],
    mesh: Mesh,
    batched: Sequence[bool],
    compiler_options: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """Jitted ``fn(*args)`` run per device on its slice of the batched arguments.

    ``fn`` must act row-wise on the leading axis of the arguments marked True in ``batched``
    (e.g. a ``jax.vmap``-ed planner): each device calls it on its [N / n, ...] slice
    (``jax.shard_map``, no communication), the others are replicated. Every output is batched
    [N, ...] and split over the mesh. With one device this is ``jax.jit(fn)``.

    Args:
      fn: the batched function.
      mesh: 1-D mesh.
      batched: one flag per positional argument.
      compiler_options: XLA options.

    Returns:
      The jitted, sharded function.
    """
    axis = mesh.axis_names[0]
    specs = tuple(P(axis) if b else P() for b in batched)
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(axis), check_vma=False)
    shardings = tuple(NamedSharding(mesh, s) for s in specs)
    return jax.jit(
        mapped,
        in_shardings=shardings,
        out_shardings=NamedSharding(mesh, P(axis)),
        compiler_options=compiler_options or None,
    )


def shard_plan(
    plan_batch_fn: Callable[[Any, Any, jax.Array], Any],
    mesh: Mesh,
    compiler_options: dict[str, Any] | None = None,
) -> Callable[[Any, Any, jax.Array], Any]:
    """Batched planning ``plan_batch_fn(params, beliefs [N, ...], keys [N]) -> [N, ...]``
    sharded over the mesh: params replicated, beliefs and keys split along N."""
    return shard_batched(plan_batch_fn, mesh, (False, True, True), compiler_options)


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits in a multi-host run (after `initialize_distributed`)."""

    process_id: int
    num_processes: int
    local_devices: int
    global_devices: int


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
    timeout_seconds: int = 300,
) -> DistributedInfo:
    """Join a multi-process JAX run (``jax.distributed.initialize``); call before any other
    JAX call. The CLI flags map one to one onto the arguments:

    * ``--coordinator=HOST:PORT``: address of process 0, reachable from every process
      (``coordinator_address``);
    * ``--num_processes=N``: total processes (``num_processes``);
    * ``--process_id=I``: this process, 0 <= I < N (``process_id``);
    * ``--local_devices=0,1``: the local devices this process drives (``local_device_ids``;
      default all; e.g. one process per GPU).

    All None lets JAX detect them on a managed cluster (Slurm, Cloud TPU, ...). On CPU the
    cross-process collectives are switched to gloo.

    Returns:
      `DistributedInfo` (process id and count, local and global device counts).

    Raises:
      ValueError: inconsistent flags (naming the flag).
    """
    given = [coordinator_address is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError(
            "--coordinator, --num_processes and --process_id: give all three or none (none: "
            "detect them on a managed cluster)"
        )
    if num_processes is not None and process_id is not None:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(
                f"--process_id: must be in [0, --num_processes={num_processes}), got {process_id}"
            )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU backend only
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=list(local_device_ids) if local_device_ids is not None else None,
        initialization_timeout=timeout_seconds,
    )
    return DistributedInfo(
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count()
    )
