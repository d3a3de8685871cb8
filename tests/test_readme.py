"""The README's promises and those of the docs pages it leads to: their library examples run as
printed, the README's test command is CI's, their PlaNet commands give valid configs, and every
relative link resolves."""

import re
import shlex
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: Pages that carry what the README used to: the front page and one docs page per topic.
DOC_PAGES = ("planet", "world_models", "solar", "scale_out", "library", "benchmarks")
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def test_library_example_runs_as_printed():
    (example,) = [b for b in _python_blocks(DOCS / "library.md") if "cem.plan(env.transition" in b]
    namespace: dict = {}
    exec(compile(example, "docs/library.md", "exec"), namespace)  # noqa: S102 — our own docs
    assert namespace["actions"].shape == (12, 2)
    assert namespace["plans"].shape == (4, 12, 2)
    assert np.all(np.abs(np.asarray(namespace["plans"])) <= 1.0)
    returns = np.asarray(namespace["returns"])
    assert returns.shape == (4,) and np.all(np.isfinite(returns))
    assert namespace["buf"].capacity == 10_000


def test_readme_python_runs_as_printed():
    blocks = _python_blocks(README)
    assert any("cem.plan(env.transition" in b for b in blocks)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 — our own README
        if "actions" in namespace:
            actions = np.asarray(namespace["actions"])
            assert actions.shape == (12, 2) and np.all(np.abs(actions) <= 1.0)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in README.read_text().splitlines()]
    assert 'pip install -e ".[test]" && pytest' in lines
    assert ci.rstrip().splitlines()[-1].strip() == "pytest"


def _planet_commands() -> list[list[str]]:
    """The PlaNet training commands printed in the README and the docs pages, as argument lists:
    lines (or `&&` parts of lines) that start with `python -m experiments.planet` or
    `jaxplanet-planet`."""
    out = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            for part in line.split("#")[0].split("&&"):
                part = part.strip()
                if part.startswith("python -m experiments.planet "):
                    argv = shlex.split(part)[3:]
                elif part.startswith("jaxplanet-planet "):
                    argv = shlex.split(part)[1:]
                else:
                    continue
                if "--mode=eval" not in argv and not any(
                    a in ("--help", "--list_envs") for a in argv
                ):
                    out.append(argv)
    return out


def test_readme_planet_commands_give_valid_configs():
    """Every PlaNet training command printed in the README or docs parses and validates (no run)."""
    from jaxplanet.cli import planet as planet_cli
    from jaxplanet.core import config as config_lib
    from jaxplanet.planet import config as planet_config

    commands = _planet_commands()
    assert any("--num_seeds=3" in c for c in commands) and len(commands) >= 5
    assert ["--env=point_reach", "--preset=quick", "--logdir=runs/quick"] in commands  # README's
    for argv in commands:
        args, overrides = planet_cli.parse_args(argv)
        base = planet_config.preset(args.preset or "paper")
        cfg = config_lib.override(base, planet_config.prng_for_seeds(base, overrides))
        cfg.validate()


def _anchor(heading: str) -> str:
    """A markdown heading's anchor as GitHub writes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_links_are_relative_and_resolve():
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            assert not target.startswith("/"), f"{page.name}: absolute link {target}"
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.exists(), f"{page.name}: broken link {target}"
            if anchor:
                assert anchor in _anchors(dest), f"{page.name}: no heading for {target}"


def test_readme_is_a_front_page():
    """Short, and it leads to every docs page and every notebook, with how to run them quickly."""
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    for name in DOC_PAGES:
        assert (DOCS / f"{name}.md").exists()
        assert f"](docs/{name}.md" in text, f"README does not link docs/{name}.md"
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"](notebooks/{notebook.name})" in text, f"README does not link {notebook.name}"
    assert "JAXPLANET_NOTEBOOK_TINY=1" in text
    assert "![" in text and "](docs/planet_point_reach_quick.png)" in text
