"""The shape of the house (docs/architecture.md): one-way layers, a light ``import dgm``, the
design in the repo, declared capabilities."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dgm"


def _lint_imports(config: Path, src: Path, cwd: Path) -> subprocess.CompletedProcess:
    """lint-imports with ``config`` on the package under ``src``, in a fresh interpreter."""
    pytest.importorskip("importlinter", reason="pip install import-linter")
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, no_logo=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_layers_hold(tmp_path):
    """lint-imports with the contracts in pyproject.toml: models import neither training nor
    evaluation, training does not import evaluation, nothing imports the cli."""
    done = _lint_imports(ROOT / "pyproject.toml", SRC.parent, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.slow
def test_a_back_edge_breaks_the_layers(tmp_path):
    """The contract can fail: a copy of the package whose models import evaluation (inside a
    function, where it is easy to miss) is refused."""
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy / "dgm", ignore=shutil.ignore_patterns("__pycache__"))
    base = copy / "dgm" / "models" / "base.py"
    base.write_text(base.read_text() + "\n\ndef _bad():\n    from dgm.evaluation import ood\n")
    done = _lint_imports(ROOT / "pyproject.toml", copy, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "dgm.models.base -> dgm.evaluation.ood" in done.stdout


@pytest.mark.slow
def test_import_dgm_and_loading_a_model_do_not_import_lightning(tmp_path):
    """Users who only load and use a model get no training stack."""
    script = (
        "import sys, dgm\n"
        "assert 'lightning' not in sys.modules, 'import dgm imported lightning'\n"
        f"dgm.create('arm', hidden=4, layers=2).save({str(tmp_path / 'm')!r})\n"
        f"model = dgm.load({str(tmp_path / 'm')!r})\n"
        "model.log_prob(model.sample(2))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', "
        "'pytorch_lightning'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_no_file_cites_a_design_outside_the_repo():
    cited = []
    for path in [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md")]:
        if "DESIGN.md" in path.read_text():
            cited.append(path.name)
    for folder in ("src", "tests", "benchmarks", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != Path(__file__).name and "DESIGN.md" in path.read_text():
                cited.append(str(path.relative_to(ROOT)))
    assert not cited, f"cite docs/architecture.md instead: {cited}"
    readme = (ROOT / "README.md").read_text()
    assert "docs/architecture.md" in readme and (ROOT / "docs" / "architecture.md").is_file()


def test_capabilities_are_declared_not_probed():
    """No attribute probing of models: hasattr / getattr with a default / callable(getattr)."""
    probe = re.compile(r"\bhasattr\(|getattr\([^)]*,[^)]*,|callable\(getattr")
    found = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("cli", "evaluation", "training")
        for path in (SRC / folder).rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    found += [f"src/dgm/pipeline.py:{i}" for i, line in enumerate(
        (SRC / "pipeline.py").read_text().splitlines(), 1) if probe.search(line)]  # fmt: skip
    assert not found, f"declare a capability (dgm.models.capabilities) instead: {found}"


def test_every_family_is_a_folder_the_registry_lists():
    from dgm import registry

    families = {e.cls.__module__.split(".")[2] for e in registry.entries()}
    assert families == {f.rsplit(".", 1)[1] for f in registry.FAMILIES}
    assert all((SRC / "models" / f).is_dir() for f in families)
    assert not [p.name for p in (SRC / "models").glob("*.py")
                if p.name not in ("__init__.py", "base.py", "capabilities.py")]  # fmt: skip
