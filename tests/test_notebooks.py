"""Every notebook in notebooks/ is stored clean and executes at tiny settings (nbclient).

The notebooks read ``JAXPLANET_NOTEBOOK_TINY=1`` in their first code cell; the execution runs
in a temporary directory (their runs/ go there). Notebooks that take more than about a minute
on a 2-core CPU are under the ``slow`` mark (``pytest -m slow``).
"""

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the 'test' extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs the 'test' extra (nbclient)")
pytest.importorskip("ipykernel", reason="needs the 'test' extra (ipykernel)")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/jaxplanet/jaxplanet/blob/main/notebooks/"

#: Notebooks measured over ~60 s at tiny settings (mostly XLA compilation), and the least
#: number of images each must display.
SLOW = {"planet_quickstart", "compose_cem", "world_models_dream", "solar_lqr"}
MIN_IMAGES = {"planet_quickstart": 2, "compose_cem": 3, "world_models_dream": 6, "solar_lqr": 5}


def _param(path: Path):
    marks = [pytest.mark.slow] if path.stem in SLOW else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_notebooks_exist():
    expected = {"planet_quickstart", "compose_cem", "world_models_dream", "solar_lqr"}
    assert expected <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in NOTEBOOKS])
def test_notebook_is_clean_with_badge_and_install_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "stored with outputs"
    first_md = next(c for c in nb.cells if c.cell_type == "markdown").source
    assert f"{COLAB}{path.name})" in first_md, "no Open in Colab badge for this notebook"
    setup = next(c for c in nb.cells if c.cell_type == "code").source
    assert re.search(r"try:\s+import jaxplanet\s+except ImportError:\s+%pip install", setup)
    assert 'TINY = os.environ.get("JAXPLANET_NOTEBOOK_TINY") == "1"' in setup


@pytest.mark.parametrize("path", [_param(p) for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPLANET_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    began = time.perf_counter()
    client.execute()  # raises CellExecutionError naming the failing cell
    wall = time.perf_counter() - began
    print(f"{path.name}: executed in {wall:.1f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "tiny settings" in text and "pip install" not in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= MIN_IMAGES.get(path.stem, 0), f"only {len(images)} images displayed"
