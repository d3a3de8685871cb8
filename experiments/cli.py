"""Flag parsing shared by the experiment entry points: config fields as flags, short errors."""

from __future__ import annotations

import argparse
import difflib
import re
import typing
from typing import Any


def field_flags(parser: argparse.ArgumentParser, defaults: Any) -> list[str]:
    """Adds ``--<field>`` for every leaf field of the config ``defaults`` (except env, seed).

    Returns the dotted field names; each flag's value lands in ``args.field:<name>`` (None when
    not given). Choice fields show their allowed values.
    """
    from jaxplanet import config as config_lib

    names = []
    group = parser.add_argument_group("config fields (paper preset defaults shown)")
    for name, (kind, default, text) in config_lib.flat_fields(defaults).items():
        if name in ("env", "seed"):
            continue
        kind_name = getattr(kind, "__name__", str(kind).replace("typing.", ""))
        metavar = kind_name.upper() if kind_name in ("int", "float", "str", "bool") else "VALUE"
        if typing.get_origin(kind) is typing.Literal:
            metavar = "{" + ",".join(map(str, typing.get_args(kind))) + "}"
        group.add_argument(
            f"--{name}", dest=f"field:{name}", metavar=metavar, help=f"{text} (default: {default})"
        )
        names.append(name)
    return names


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
