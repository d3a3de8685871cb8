"""Command-line entry points, installed as console scripts.

    jaxplanet planet --env=point_reach --preset=quick      # or: jaxplanet-planet ...
    jaxplanet world-models --env=point_reach --preset=quick
    jaxplanet solar --env=nav2d --preset=quick
    jaxplanet plot --logdir runs/quick

From a checkout, ``python -m experiments.<system>`` runs the same code. This module also holds
the flag parsing they share: config fields as flags, short errors.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any


def field_flags(
    parser: argparse.ArgumentParser,
    defaults: Any,
    sections: dict[str, tuple[str, ...]] | None = None,
    presets: dict[str, Any] | None = None,
) -> list[str]:
    """Adds ``--<field>`` for every leaf field of the config ``defaults`` (except env, seed).

    Args:
      parser: the parser to extend.
      defaults: the config whose values are shown as defaults (the paper preset).
      sections: help section title -> top-level field names; dotted fields (``model.x``) get a
        section per prefix; fields named nowhere go under "run".
      presets: other named configs; where one's value differs, the help shows it too.

    Returns the dotted field names; each flag's value lands in ``args.field:<name>`` (None when
    not given). Choice fields show their allowed values.
    """
    from jaxplanet.core import config as config_lib

    others = {n: config_lib.flat_fields(c) for n, c in (presets or {}).items()}
    groups: dict[str, argparse._ArgumentGroup] = {}
    where = {f: title for title, fields in (sections or {}).items() for f in fields}

    def group_of(name: str) -> argparse._ArgumentGroup:
        title = where.get(name) or (
            f"{name.split('.')[0]} (--{name.split('.')[0]}.*)" if "." in name else "run"
        )
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        return groups[title]

    for title in sections or {}:
        groups[title] = parser.add_argument_group(title)
    names = []
    for name, (kind, default, text) in config_lib.flat_fields(defaults).items():
        if name in ("env", "seed"):
            continue
        kind_name = getattr(kind, "__name__", str(kind).replace("typing.", ""))
        metavar = kind_name.upper() if kind_name in ("int", "float", "str", "bool") else "VALUE"
        if typing.get_origin(kind) is typing.Literal:
            metavar = "{" + ",".join(map(str, typing.get_args(kind))) + "}"
        shown = f"default: {_show(default)}"
        differ = [f"{p} {_show(o[name][1])}" for p, o in others.items() if o[name][1] != default]
        if differ:
            shown += "; " + ", ".join(differ)
        group_of(name).add_argument(
            f"--{name}", dest=f"field:{name}", metavar=metavar, help=f"{text} ({shown})"
        )
        names.append(name)
    return names


def _show(value: Any) -> str:
    if isinstance(value, float) and (abs(value) >= 1e5 or 0 < abs(value) < 1e-3):
        return f"{value:.3g}"
    return str(value)


class Parser(argparse.ArgumentParser):
    """Short errors: the bad flag, why, and the closest valid flags (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        hint = ""
        match = re.search(r"unrecognized arguments: (\S+)", message)
        if match:
            flag = match.group(1).split("=")[0]
            valid = [o for a in self._actions for o in a.option_strings]
            close = difflib.get_close_matches(flag, valid, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
        self.exit(2, f"error: {message}.{hint} See --help.\n")


SYSTEMS = {
    "planet": "jaxplanet.cli.planet",
    "world-models": "jaxplanet.cli.world_models",
    "solar": "jaxplanet.cli.solar",
    "plot": "jaxplanet.cli.plot",
}


def version() -> str:
    """The installed jaxplanet's version (the package's ``__version__`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("jaxplanet")
    except metadata.PackageNotFoundError:
        import jaxplanet

        return jaxplanet.__version__


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: prints ``jaxplanet <version>`` and exits 0."""
    parser.add_argument(
        "--version",
        action="version",
        version=f"jaxplanet {version()}",
        help="print the jaxplanet version and exit",
    )


def add_run_flags(
    parser: argparse.ArgumentParser,
    presets: Sequence[str],
    env_help: str,
    logdir_default: str,
    mode: bool = True,
) -> None:
    """The flags every command shares: ``--version``, ``--env``, ``--preset`` (default: paper,
    or the saved config of the run in ``--logdir``), ``--logdir``, ``--seed`` and, with
    ``mode``, ``--mode`` (train or eval) and ``--list_envs``."""
    add_version_flag(parser)
    parser.add_argument("--env", default=None, help=env_help)
    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(presets),
        help="named config (default: paper; when --logdir holds a run, its saved config)",
    )
    parser.add_argument("--logdir", default=None, help=f"run directory (default: {logdir_default})")
    parser.add_argument("--seed", default=None, help="random seed (default: 0)")
    if mode:
        parser.add_argument(
            "--mode",
            default="train",
            choices=("train", "eval"),
            help="what to run (default: train)",
        )
        parser.add_argument(
            "--list_envs", action="store_true", help="print the valid task names and exit"
        )


def run_parser(
    prog: str, doc: str, presets: Sequence[str], env_help: str, logdir_default: str, **kwargs: Any
) -> Parser:
    """A command's parser: its description (the first paragraph of ``doc``) and `add_run_flags`;
    ``kwargs`` go to the parser (``usage``, ``epilog``)."""
    parser = Parser(
        prog=prog,
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )
    add_run_flags(parser, presets, env_help, logdir_default)
    return parser


def parse_run_args(
    parser: argparse.ArgumentParser,
    defaults: Any,
    argv: Sequence[str] | None,
    sections: dict[str, tuple[str, ...]] | None = None,
    presets: dict[str, Any] | None = None,
) -> tuple[argparse.Namespace, dict[str, str]]:
    """Adds the config ``defaults``' field flags (`field_flags`), parses ``argv`` and returns the
    namespace and the config-field overrides as strings (`config_overrides`)."""
    names = field_flags(parser, defaults, sections, presets)
    args = parser.parse_args(argv)
    return args, config_overrides(args, names)


def check_run_args(args: argparse.Namespace) -> None:
    """Refuses (`config.ConfigError`) a ``--logdir`` that is a file (`check_logdir`) and
    ``--mode=eval`` without a ``--logdir``."""
    from jaxplanet.core import config as config_lib

    if args.logdir:
        check_logdir(args.logdir)
    if args.mode == "eval" and not args.logdir:
        raise config_lib.ConfigError("--logdir: --mode=eval needs the run directory")


def check_logdir(logdir: str) -> None:
    """Refuses (`config.ConfigError`) a ``--logdir`` that is a file or lies under a file."""
    from jaxplanet.core import config as config_lib

    path = os.path.abspath(logdir)
    if os.path.exists(path) and not os.path.isdir(path):
        raise config_lib.ConfigError(f"--logdir: {logdir} is a file, not a run directory")
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent and not os.path.isdir(parent):
        raise config_lib.ConfigError(f"--logdir: {parent} is a file, so {logdir} cannot be made")


def config_overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    """The config fields given on the command line (``field_flags`` names, ``--env``, ``--seed``),
    as strings for ``config.override``."""
    overrides = {
        n: getattr(args, f"field:{n}") for n in names if getattr(args, f"field:{n}") is not None
    }
    for name in ("env", "seed"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return overrides


def base_config(
    config_cls: type, preset_fn: Callable[[str], Any], logdir: str | None, preset: str | None
) -> tuple[Any, str]:
    """The config a command starts from, and its name for the banner.

    Resuming (``logdir`` holds a run and no ``--preset`` was given) starts from the run's saved
    config, so only the flags given change it; otherwise ``preset`` (default ``paper``).
    """
    from jaxplanet.core import checkpoint
    from jaxplanet.core import config as config_lib

    saved = checkpoint.read_config(logdir) if logdir else None
    if saved is not None and preset is None:
        return config_lib.from_dict(config_cls, saved), "saved"
    preset = preset or "paper"
    return preset_fn(preset), preset


def run_command(body: Callable[[], Any]) -> int:
    """Runs ``body()`` with the exit statuses every command shares: 0 ok (or what ``body``
    returns), 2 bad input (a bad flag or config, an unknown env, a run directory of another
    config, a missing optional package, no rendering backend), 3 a non-finite loss, 130 Ctrl-C
    (the run resumes from its last checkpoint). Errors are one ``error:`` line on stderr."""
    from jaxplanet import envs
    from jaxplanet.core import checkpoint, console
    from jaxplanet.core import config as config_lib
    from jaxplanet.envs.dmc import RenderingError

    try:
        status = body()
    except (
        config_lib.ConfigError,
        envs.UnknownEnvError,
        checkpoint.ConfigMismatchError,
        RenderingError,
        ImportError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # planet.NonFiniteLossError and SOLAR's checks
        print(f"stopped: {err}", file=sys.stderr)
        return 3
    except (KeyboardInterrupt, console.StopRequested):
        print(
            "interrupted: the run resumes from its last checkpoint with the same --logdir.",
            file=sys.stderr,
        )
        return console.INTERRUPT_EXIT
    return 0 if status is None else int(status)


def summary_line(summary: dict[str, Any], skip_prefixes: Sequence[str] = ()) -> str:
    """``key=value`` pairs of a run summary on one line (floats to 4 significant digits)."""
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.items()
        if not any(k.startswith(p) for p in skip_prefixes) and not isinstance(v, list | dict)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxplanet <system> [flags]``: runs that system's entry point with the flags."""
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        print(f"jaxplanet {version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SYSTEMS:
        known = ", ".join(SYSTEMS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; valid commands: {known}", file=sys.stderr)
            return 2
        print(f"usage: jaxplanet {{{','.join(SYSTEMS)}}} [flags]   (jaxplanet <command> --help)")
        return 0 if argv else 2
    module = importlib.import_module(SYSTEMS[argv[0]])
    return module.main(argv[1:], prog=f"jaxplanet {argv[0]}")


__all__ = [
    "Parser",
    "SYSTEMS",
    "add_run_flags",
    "add_version_flag",
    "base_config",
    "check_logdir",
    "config_overrides",
    "field_flags",
    "main",
    "run_command",
    "summary_line",
    "version",
]
