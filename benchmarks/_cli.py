"""What the benchmark scripts share: ``dgm`` in a subprocess, one thread, as a user runs it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def dgm(*args: Any, threads: int = 1) -> tuple[int, str, str]:
    """Run ``dgm ARGS`` (``python -m dgm``) with ``threads`` OpenMP threads: (code, out, err)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "dgm", *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def dgm_json(*args: Any, threads: int = 1) -> dict[str, Any]:
    """``dgm ARGS`` whose last stdout line is one JSON object; raise with its stderr if it fails."""
    code, out, err = dgm(*args, threads=threads)
    if code != 0:
        raise RuntimeError(f"dgm {' '.join(map(str, args))} failed: {err.strip()[-400:]}")
    return json.loads(out.strip().splitlines()[-1])


def sets(items: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [x for kv in items for x in ("--set", kv)]


def train_once(run: Path, model: str, data: str, *flags: Any, threads: int = 1) -> float:
    """``dgm train MODEL --data DATA --out RUN --overwrite FLAGS`` unless RUN already holds a
    finished run (its results.json): the seconds it took, nan when reused; exits on failure."""
    if (run / "results.json").is_file():
        print(f"reusing {run}", flush=True)
        return math.nan
    t0 = time.perf_counter()
    code, _, err = dgm(
        "train", model, "--data", data, "--out", run, "--overwrite", *flags, threads=threads
    )
    if code != 0:
        raise SystemExit(f"training {run} failed: {err.strip()[-400:]}")
    return time.perf_counter() - t0
