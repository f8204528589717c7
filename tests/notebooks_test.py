"""The colabs/ notebooks: committed without outputs, and each runs top to bottom.

Every notebook is executed on its small setting (BIG_RUN = False) in a fresh
kernel with colabs/ as the working directory, as on Colab after the install cell;
any cell that raises fails the test.
"""

import os
import re
import time

import nbclient
import nbformat
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS = os.path.join(REPO_ROOT, "colabs")
NOTEBOOKS = ("quickstart", "modularity", "rotation", "images_as_functions")
CELL_TIMEOUT_S = 600
# The kernels' XLA:CPU backend at -O1, not the suite's -O0 (conftest): notebooks train
# for hundreds of steps, so the generated code's speed counts as much as compiling it.
# Kernel wall time, one process each, rotation + modularity + quickstart, 2-core host:
# -O0 269 s cold / 168 s warm cache; -O1 271 s cold / 137 s warm.
NOTEBOOK_XLA_FLAGS = "--xla_backend_optimization_level=1"


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(os.path.join(COLABS, f"{name}.ipynb"), as_version=4)


def test_every_notebook_is_listed():
  found = sorted(f[:-len(".ipynb")] for f in os.listdir(COLABS) if f.endswith(".ipynb"))
  assert found == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
  nb = _read(name)
  nbformat.validate(nb)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
      assert cell.outputs == [], f"{name}.ipynb cell {i} has saved outputs"
      assert cell.execution_count is None, f"{name}.ipynb cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_opens_with_title_and_colab_badge(name):
  first = _read(name).cells[0]
  assert first.cell_type == "markdown"
  assert first.source.startswith("# ")
  assert re.search(r"https://colab\.research\.google\.com/github/[^/]+/hypernets/blob/main/"
                   rf"colabs/{name}\.ipynb", first.source)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_small_setting_is_committed(name):
  sources = "\n".join(c.source for c in _read(name).cells if c.cell_type == "code")
  assert re.search(r"^BIG_RUN = False$", sources, re.M)
  assert re.search(r"^SAVE_KEY_FIGURE = False", sources, re.M)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_top_to_bottom(name, monkeypatch):
  nb = _read(name)
  monkeypatch.setenv("XLA_FLAGS", NOTEBOOK_XLA_FLAGS)  # the kernel inherits this process's env
  start = time.perf_counter()
  # Raises CellExecutionError (with the cell's traceback) on the first failing cell.
  nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                          resources={"metadata": {"path": COLABS}}).execute()
  print(f"{name}.ipynb ran in {time.perf_counter() - start:.1f} s")
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]
  assert not errors
