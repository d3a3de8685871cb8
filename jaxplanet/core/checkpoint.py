"""Checkpoints of a whole run state with orbax, and a guard against resuming with another config.

A run state is any pytree (params, optimizer state, PRNG keys, counters). `Checkpointer` saves
it synchronously with ``orbax.checkpoint.CheckpointManager`` (``max_to_keep`` newest kept)
together with the run config as JSON and a CRC32 of every leaf. When ``save`` returns the
checkpoint is complete on disk (orbax writes to a temp dir and renames it on commit), so a kill
at any point leaves either the previous or the new checkpoint, never a half one that is trusted.

`Checkpointer.restore` tries the newest step first; a checkpoint that fails to load or whose
checksums disagree (truncated, deleted or garbled files) is reported with a warning and the
previous one is tried. Typed PRNG keys (``jax.random.key``) are stored as raw uint32 key data
and rewrapped from the template's key implementation.

`check_config` compares a new config with the saved one and raises `ConfigMismatchError`
naming every differing field as ``name: saved -> new`` (nested dicts flattened with dots).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import shutil
import warnings
import zlib
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxplanet.core import config as config_lib

__all__ = [
    "load_eval_config",
    "CONFIG_FILE",
    "Checkpointer",
    "ConfigMismatchError",
    "claim_run_dir",
    "check_config",
    "config_diff",
    "read_config",
    "to_jsonable",
    "write_config",
]

CONFIG_FILE = "config.json"
MANIFEST_FILE = "jaxplanet_manifest.json"  # {relative path: [size, crc32]} of a step's files


class ConfigMismatchError(ValueError):
    """A run directory holds a config that differs from the one given."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep orbax's INFO chatter (absl logger) out of the run's output."""
    loggers = [logging.getLogger(n) for n in ("absl", "orbax", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers[:2]:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    loggers[2].setLevel(logging.CRITICAL)  # orbax's failed reads leave unretrieved task errors
    try:
        yield
    finally:
        gc.collect()  # report those orphaned task errors while still silenced
        for lg, lvl in zip(loggers, levels, strict=True):
            lg.setLevel(lvl)


def to_jsonable(obj: Any) -> Any:
    """Convert a config (dicts, dataclasses, tuples, numpy scalars, paths) to JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # ml_collections.ConfigDict
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray | jax.Array):
        return np.asarray(obj).tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def config_diff(saved: Mapping, new: Mapping) -> dict[str, tuple[Any, Any]]:
    """Fields (dotted names) whose values differ: ``{name: (saved, new)}``."""
    rows = config_lib.diff(to_jsonable(saved), to_jsonable(new))
    return {name: (old, value) for name, old, value in rows}


def write_config(directory: str | os.PathLike, config: Mapping) -> Path:
    """Write ``config`` as ``directory/config.json`` (atomically) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    _atomic_write_text(path, json.dumps(to_jsonable(config), indent=2, sort_keys=True))
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_eval_config(
    logdir: str | os.PathLike,
    cls: type,
    system: str,
    allowed: frozenset[str] | set[str],
    overrides: Mapping[str, str] | None = None,
) -> tuple[Any, Any]:
    """The config of a trained run for ``--mode=eval``: (as saved, with ``overrides`` applied).

    Raises:
      config.ConfigError: no run in ``logdir`` (names ``system``), or an override of a field
        outside ``allowed`` (names the flag and the allowed ones).
    """
    saved = read_config(logdir)
    if saved is None:
        raise config_lib.ConfigError(f"--logdir: no {system} run (config.json) in {logdir}")
    foreign = _another_kind(saved, cls(), logdir)
    if foreign:
        raise config_lib.ConfigError(f"--logdir: {foreign} It is not a {system} run.")
    cfg = config_lib.from_dict(cls, saved)
    overrides = dict(overrides or {})
    fixed = sorted(set(overrides) - set(allowed))
    if fixed:
        raise config_lib.ConfigError(
            f"--{fixed[0]}: cannot change a trained run's config in eval mode "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    return cfg, config_lib.override(cfg, overrides)


def _another_kind(saved: dict, config: Any, where: str | os.PathLike) -> str:
    """'<where> holds a run of another kind (...).' when most of the ``saved`` config's fields
    are unknown to ``config`` (another system's run), else ''."""
    foreign = sorted(set(saved) - set(to_jsonable(config)))
    if len(foreign) * 2 <= len(saved):
        return ""
    more = ", ..." if len(foreign) > 5 else ""
    return (
        f"{where} holds a run of another kind (its config has fields this system does not "
        f"know: {', '.join(foreign[:5])}{more})."
    )


def read_config(directory_or_path: str | os.PathLike) -> dict | None:
    """The saved config: a JSON file, ``dir/config.json``, or the newest checkpoint's; else None."""
    path = Path(directory_or_path)
    if path.is_file():
        return json.loads(path.read_text())
    if (path / CONFIG_FILE).is_file():
        return json.loads((path / CONFIG_FILE).read_text())
    if path.is_dir():
        ckpt = Checkpointer(path, create=False)
        for step in reversed(ckpt.steps()):
            try:
                return ckpt.restore_config(step)
            except Exception:  # noqa: BLE001 — try an older checkpoint
                continue
    return None


def claim_run_dir(directory: str | os.PathLike, cfg: Any, allowed: frozenset[str]) -> Path:
    """Start or resume a run of the dataclass config ``cfg`` in ``directory``.

    Refuses (`check_config`, with the config class's defaults for fields an older run lacks)
    a directory holding a run of another config, before anything is written; then creates the
    directory and writes ``config.json``. Returns the directory.
    """
    directory = Path(directory)
    config = config_lib.to_dict(cfg)
    check_config(directory, config, allowed, defaults=config_lib.to_dict(type(cfg)()))
    directory.mkdir(parents=True, exist_ok=True)
    write_config(directory, config)
    return directory


def _with_defaults(saved: Mapping, defaults: Mapping) -> dict:
    """``saved`` with the fields it lacks taken from ``defaults`` (nested dicts merged)."""
    out = dict(saved)
    for name, value in defaults.items():
        if name not in out:
            out[name] = value
        elif isinstance(value, Mapping) and isinstance(out[name], Mapping):
            out[name] = _with_defaults(out[name], value)
    return out


def check_config(
    directory_or_path: str | os.PathLike,
    config: Mapping,
    allowed: frozenset[str] | set[str] = frozenset(),
    defaults: Mapping | None = None,
) -> dict | None:
    """Refuse to resume with a config that differs from the saved one.

    Args:
        directory_or_path: a run/checkpoint directory or a config.json path.
        config: the new config.
        allowed: dotted field names that may differ (e.g. {"total_steps"}); a name also
            allows every field below it ("env" allows "env.seed").
        defaults: the config class's defaults. A field the saved config lacks (a run written
            before the field existed, which ran with its default behaviour) counts as this
            default, so such a run resumes when the new config leaves it at the default.

    Returns:
        The saved config, or None when nothing is saved (a fresh run).

    Raises:
        ConfigMismatchError: listing each differing field as ``name: saved -> new``.
    """
    saved = read_config(directory_or_path)
    if saved is None:
        return None

    def is_allowed(name: str) -> bool:
        return any(name == a or name.startswith(a + ".") for a in allowed)

    foreign = _another_kind(saved, config, directory_or_path)
    if foreign:
        raise ConfigMismatchError(f"{foreign} Use a new run directory.")
    if defaults is not None:
        saved = _with_defaults(saved, to_jsonable(defaults))
    diff = {k: v for k, v in config_diff(saved, config).items() if not is_allowed(k)}
    if diff:
        lines = "\n".join(
            f"  {k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in diff.items()
        )
        may = ", ".join(sorted(allowed))
        may = f" (fields that may change on resume: {may})" if may else ""
        raise ConfigMismatchError(
            f"config differs from the one saved in {directory_or_path}:\n{lines}\n"
            f"Use a new run directory, or resume with the saved values{may}."
        )
    return saved


# ----------------------------------------------------------------------------- pytrees


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(x: Any) -> Any:
    """Leaves orbax stores: jax/numpy arrays; typed keys become their uint32 key data."""
    if _is_key(x):
        return jax.random.key_data(x)
    if isinstance(x, jax.Array | np.ndarray):
        return x
    return np.asarray(x)


def _from_storable(restored: Any, template: Any) -> Any:
    """Give a restored leaf the template leaf's kind (typed key, jax/numpy array, scalar)."""
    if _is_key(template):
        return jax.random.wrap_key_data(restored, impl=jax.random.key_impl(template))
    if isinstance(template, jax.Array):
        return jax.numpy.asarray(restored)
    if isinstance(template, np.ndarray):
        return np.asarray(restored)
    if isinstance(template, np.generic):
        return type(template)(np.asarray(restored).item())
    if isinstance(template, bool | int | float):
        return type(template)(np.asarray(restored).item())
    return restored


def _checksums(tree: Any) -> list[int]:
    return [zlib.crc32(np.ascontiguousarray(x).tobytes()) for x in jax.tree.leaves(tree)]


def _file_manifest(step_dir: Path) -> dict[str, list[int]]:
    out = {}
    for p in sorted(step_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST_FILE:
            out[str(p.relative_to(step_dir))] = [p.stat().st_size, zlib.crc32(p.read_bytes())]
    return out


def _verify_manifest(step_dir: Path) -> None:
    """Raise if any file listed in the step's manifest is missing, resized or changed."""
    path = step_dir / MANIFEST_FILE
    if not path.is_file():
        warnings.warn(
            f"{step_dir} has no {MANIFEST_FILE}; relying on orbax and checksums", stacklevel=3
        )
        return
    want = json.loads(path.read_text())
    have = _file_manifest(step_dir)
    bad = sorted(k for k, v in want.items() if have.get(k) != v)
    if bad:
        raise ValueError(f"files missing or changed since save: {bad[:5]}")


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            raise TypeError("give typed PRNG keys in the template as concrete keys")
        return x
    x = _to_storable(x)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype)


class Checkpointer:
    """Keeps the ``max_to_keep`` newest checkpoints of a run state in ``directory``, and every
    checkpoint whose step is in ``keep`` (e.g. the end of each round of a staged run).

    Example:
        ckpt = Checkpointer(workdir / "ckpt", max_to_keep=3)
        ckpt.save(step, {"params": params, "opt": opt_state, "key": key, "step": step}, config)
        restored = ckpt.restore(template)   # (step, state) or None
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        max_to_keep: int = 3,
        create: bool = True,
        keep: Collection[int] = (),
    ):
        self.directory = Path(directory).absolute()
        self._max_to_keep, self._keep = max_to_keep, frozenset(int(s) for s in keep)
        if create:  # drop half-written step dirs of a killed save before orbax looks (its own
            # background clean-up would race with a second one)
            for leftover in self.directory.glob("*.orbax-checkpoint-tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if self._keep else max_to_keep,  # with keep: pruned in save
            enable_async_checkpointing=False,
            create=create,
            cleanup_tmp_directories=create,  # drop half-written step dirs of a killed save
        )
        with _quiet():
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "config", "meta")
            )

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, config: Mapping | None = None) -> Path:
        """Save ``state`` (any pytree) and ``config`` as checkpoint ``step``; blocks until done.

        Existing checkpoints at ``step`` or later (left by a run that is now resumed from an
        earlier point) are replaced.
        """
        step = int(step)
        stale = [s for s in self.steps() if s >= step]
        if stale:
            warnings.warn(f"replacing checkpoints {stale} in {self.directory}", stacklevel=2)
        storable = jax.tree.map(_to_storable, state)
        meta = {"step": step, "crc32": _checksums(storable)}
        with _quiet():
            for s in stale:
                self._manager.delete(s)
            saved = self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(storable),
                    config=ocp.args.JsonSave(to_jsonable(config or {})),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=True,
            )
            self._manager.wait_until_finished()
        if not saved:
            raise RuntimeError(f"orbax declined to save step {step} in {self.directory}")
        step_dir = self._step_dir(step)
        _atomic_write_text(step_dir / MANIFEST_FILE, json.dumps(_file_manifest(step_dir)))
        if self._keep:
            prunable = [s for s in self.steps() if s not in self._keep]
            with _quiet():
                for s in prunable[: max(0, len(prunable) - self._max_to_keep)]:
                    self._manager.delete(s)
        return step_dir

    def _step_dir(self, step: int) -> Path:
        return self.directory / str(step)  # orbax's default step naming (no prefix)

    def restore_step(self, step: int, template: Any) -> Any:
        """Restore checkpoint ``step`` into the structure of ``template``; raises if unusable."""
        _verify_manifest(self._step_dir(step))
        abstract = jax.tree.map(_abstract, template)
        with _quiet():
            out = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        restored, meta = out["state"], out["meta"]
        sums = _checksums(restored)
        if meta is None or list(meta.get("crc32", [])) != sums:
            raise ValueError(f"checksum mismatch in checkpoint {step}")
        return jax.tree.map(_from_storable, restored, template)

    def restore_config(self, step: int) -> dict:
        """The config saved with checkpoint ``step``."""
        with _quiet():
            out = self._manager.restore(
                step, args=ocp.args.Composite(config=ocp.args.JsonRestore())
            )
        return out["config"]

    def restore(self, template: Any) -> tuple[int, Any] | None:
        """Newest restorable checkpoint as ``(step, state)``, or None when there is none.

        Args:
            template: pytree with the run state's structure, shapes and dtypes (concrete arrays
                or ``jax.ShapeDtypeStruct``; typed PRNG keys must be concrete keys).

        A checkpoint that fails to load or fails its checksums is skipped with a warning and the
        previous one is tried. Raises RuntimeError if checkpoints exist but none can be restored.
        """
        jax.tree.map(_abstract, template)  # template errors are the caller's, not corruption
        steps = self.steps()
        errors = []
        for step in reversed(steps):
            try:
                return step, self.restore_step(step, template)
            except Exception as e:  # noqa: BLE001 — fall back to an older checkpoint
                errors.append(f"step {step}: {e!r}")
                warnings.warn(
                    f"checkpoint {step} in {self.directory} is unusable ({e!r:.300}); "
                    "falling back to the previous one",
                    stacklevel=2,
                )
        if steps:
            raise RuntimeError(
                f"no restorable checkpoint in {self.directory}:\n" + "\n".join(errors)
            )
        return None

    def close(self) -> None:
        """Release orbax resources."""
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
