"""The code base stays ruff clean (settings in pyproject.toml)."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (extra 'test')")
def test_ruff_clean():
    result = subprocess.run(
        [shutil.which("ruff") or "ruff", "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_library_never_imports_experiments_or_reads_flags():
    offenders = []
    for path in (ROOT / "jaxplanet").rglob("*.py"):
        text = path.read_text()
        entry_point = path.parent.name == "cli"  # console scripts: the only flag readers
        if "import experiments" in text or "from experiments" in text:
            offenders.append(str(path.relative_to(ROOT)))
        if "sys.argv" in text and not entry_point:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], offenders


def test_ruff_targets_the_oldest_supported_python():
    """ruff's pyupgrade rules (UP) rewrite code for its `target-version`: it must be the oldest
    Python that `requires-python` admits, or they could bring in syntax that Python lacks."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = project["project"]["requires-python"]
    oldest = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert oldest, f"requires-python {requires!r}: expected '>=3.N'"
    assert project["tool"]["ruff"]["target-version"] == f"py3{oldest.group(1)}"
