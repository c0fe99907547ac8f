"""Every transform class that ``dgm.transforms`` exports is proved by the parametrised checks
of some ``test_transforms_*.py`` file (``tests/transform_checks.py``): this test fails when a
new transform arrives without cases."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import dgm.transforms as T
from dgm.transforms import Bijection

# pure plumbing, proved through the transforms they combine
PLUMBING = {"Bijection", "ComposedBijection", "InverseBijection"}


def _bijections_in(t: object, seen: set[type]) -> None:
    """Collect the classes of ``t`` and of every bijection inside it (parts, inner, base)."""
    if isinstance(t, Bijection):
        seen.add(type(t))
        for value in vars(t).values():
            _bijections_in(value, seen)
    elif isinstance(t, list | tuple):
        for item in t:
            _bijections_in(item, seen)


def test_every_exported_transform_has_cases():
    covered: set[type] = set()
    here = Path(__file__).parent
    for path in sorted(here.glob("test_transforms_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for case in module.CASES:
            t, _ = case.make()
            _bijections_in(t, covered)
    exported = {
        name
        for name, obj in vars(T).items()
        if inspect.isclass(obj) and issubclass(obj, Bijection) and name not in PLUMBING
    }
    missing = sorted(n for n in exported if getattr(T, n) not in covered)
    assert not missing, f"no parametrised transform case builds {missing}"
    assert len(exported) >= 15
