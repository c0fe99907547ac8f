"""Write a folder of inputs to try ``dgm detect`` on a model trained on digits.

    python examples/detect_inputs.py inputs/
    dgm train hybrid-flow --data digits --out runs/hybrid
    dgm detect runs/hybrid inputs/

The folder holds, as 8x8 grey PNGs (what a user's own scans would be): test digits (in
distribution), the same digits inverted and uniform noise (out of distribution), a digit
shifted by two pixels (near the edge of the distribution), one array file with a batch of test
digits in the data's own levels, and two files ``dgm detect`` must refuse with a reason: an
image of the wrong size and a file that is not an image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from dgm.data import load_dataset


def save_png(levels: np.ndarray, top: int, path: Path) -> None:
    """``[8, 8]`` levels 0..top -> an 8-bit grey PNG (0..255)."""
    Image.fromarray(np.round(levels * 255 / top).astype(np.uint8)).save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="folder to write")
    p.add_argument("-n", type=int, default=4, help="inputs of each kind")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ds = load_dataset("digits")
    top = ds.spec.levels - 1
    test = ds.test.x[:, 0].numpy()  # [N, 8, 8] levels
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        save_png(test[i], top, args.out / f"digit-{i}.png")
        save_png(top - test[i], top, args.out / f"inverted-{i}.png")
        save_png(rng.integers(0, top + 1, (8, 8)), top, args.out / f"noise-{i}.png")
    save_png(np.roll(test[0], 2, axis=1), top, args.out / "shifted-0.png")
    np.save(args.out / "digits-batch.npy", ds.test.x[args.n : 2 * args.n].numpy())
    Image.new("L", (28, 28)).save(args.out / "wrong-size.png")
    (args.out / "notes.txt").write_text("not an image\n")
    print(f"wrote {len(list(args.out.iterdir()))} files to {args.out}")


if __name__ == "__main__":
    main()
