"""House rules that keep the code easy to read: lint clean, layers one way."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

METHOD_MODULES = ["vum", "svo", "clave", "univar", "denevil", "profile", "values", "parsing", "inputs", "store",
                  "embed", "config"]


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff not installed")
    out = subprocess.run([str(ruff), "check", "valdemo", "tests", "benchmarks", "scripts", "app.py"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", METHOD_MODULES)
def test_method_and_model_modules_never_import_gradio(name):
    module = ROOT / "valdemo" / f"{name}.py"
    paths = [module] if module.exists() else sorted((ROOT / "valdemo" / name).glob("*.py"))  # a package
    assert paths, name
    for path in paths:
        assert "gradio" not in _imports(path), f"{path.name} imports gradio: keep UI code in valdemo/ui/"


def test_models_layer_never_imports_methods_or_ui():
    for path in (ROOT / "valdemo" / "models").glob("*.py"):
        source = path.read_text()
        for upper in ("from ..ui", "from .. import ui", "from ..vum", "from ..clave", "from ..svo",
                      "from ..univar", "from ..denevil", "import gradio"):
            assert upper not in source, f"{path.name}: {upper}"
