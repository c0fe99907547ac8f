"""``dgm optimize RUN --property qed --steps N``: search the latent space of a VAE with a
property head (:class:`~dgm.models.capabilities.PropertyPredictor`, mol-vae's joint model) for
molecules that score higher (Gomez-Bombarelli et al. 2018, section "Optimization of molecules
in latent space").

Gradient ascent on the head's prediction from the codes of training molecules (posterior
means), with a pull towards the prior, log N(z; 0, I), so the search stays where the decoder
has seen data. Every few steps each code is decoded greedily; every valid, distinct molecule
met is scored by RDKit (the real property, not the head's guess), and the best are printed
with both numbers. ``penalized-logp`` with a head of logP and SA (no ring term) climbs their
standardised difference and says so."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.cli import molecules as molio
from dgm.errors import ConfigError

DECODE_EVERY = 5  # steps between greedy decodes of every code


def add_parser(sub: Any) -> None:
    summary = "search a molecule VAE's latent space for better properties"
    p = sub.add_parser("optimize", help=summary, description=__doc__)
    p.add_argument("run", metavar="RUN", help="a run of a model with a property head (mol-vae)")
    p.add_argument(
        "--property",
        required=True,
        metavar="NAME",
        help="what to maximise: qed, logp, penalized-logp, or any property the head predicts",
    )
    p.add_argument("--steps", type=int, default=100, help="gradient steps (default 100)")
    p.add_argument("--starts", type=int, default=100, help="codes searched at once (default 100)")
    p.add_argument("--lr", type=float, default=0.05, help="step size of Adam (default 0.05)")
    p.add_argument(
        "--prior-weight",
        type=float,
        default=0.1,
        help="weight of log p(z) in the objective: keeps codes near the prior (default 0.1)",
    )
    p.add_argument("--top", type=int, default=10, help="molecules printed (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the molecules found as JSON")
    p.add_argument(
        "--out", default=None, metavar="FILE.smi|FILE.png", help="also write the best molecules"
    )
    common.add_device(p)


def _objective(model: Any, prop: str) -> tuple[Any, str]:
    """z -> the head's value to maximise ``[B]``, and how it is read from the head."""
    import torch

    names = model.property_names
    if prop in names:
        i = names.index(prop)
        return (lambda z: model.predict_properties(z)[:, i]), f"the head's {prop}"
    if prop == "penalized-logp" and {"logp", "sa"} <= set(names):
        from dgm.data.chem import _ZINC_LOGP, _ZINC_SA

        a, b = names.index("logp"), names.index("sa")

        def f(z: torch.Tensor) -> torch.Tensor:
            p = model.predict_properties(z)
            return (p[:, a] - _ZINC_LOGP[0]) / _ZINC_LOGP[1] + (-p[:, b] - _ZINC_SA[0]) / _ZINC_SA[
                1
            ]

        return f, "the head's logP and SA, ZINC-standardised (the ring term is not predicted)"
    have = ", ".join(names) or "nothing"
    raise ConfigError(
        f"--property {prop}: the head of {model.name} predicts {have}; choose one of those"
        + (" (or penalized-logp, from logp and sa)" if {"logp", "sa"} <= set(names) else "")
        + ", or retrain with --set properties=...,"
        + prop
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from dgm.data import chem
    from dgm.models.capabilities import Autoencoder, PropertyPredictor

    common.check_positive(args.steps, "--steps")
    common.check_positive(args.starts, "--starts")
    common.check_positive(args.top, "--top")
    common.check_number(args.lr, "--lr")
    if args.prior_weight < 0:
        raise ConfigError(f"--prior-weight must be >= 0, got {args.prior_weight:g}")
    if args.out is not None:
        if Path(args.out).suffix.lower() not in (".smi", ".png"):
            raise ConfigError(f"--out {args.out}: use a .smi or .png file name")
        common.check_output(args.out, "--out")
    loaded = common.load_run(args.run, args.device)
    model: Any = loaded.model
    if not (isinstance(model, PropertyPredictor) and isinstance(model, Autoencoder)):
        raise ConfigError(
            f"dgm optimize searches the latent space of a model with a property head "
            f"(mol-vae); {model.name} has none"
        )
    if not model.property_names:
        raise ConfigError(
            f"{args.run}: this {model.name} was trained without properties, so it has no "
            "property head; train one with --set properties=logp,qed,sa"
        )
    objective, how = _objective(model, args.property)
    scored_by_rdkit = args.property in chem.PROPERTIES
    torch.manual_seed(args.seed)
    train = common.split_inputs(loaded.dataset(), "train")
    pick = torch.randperm(len(train))[: args.starts]
    with torch.no_grad():
        z0 = model.encode(train[pick].to(model.device))
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=args.lr)
    found: dict[str, dict[str, Any]] = {}

    def harvest(step: int) -> None:
        with torch.no_grad():
            predicted = objective(z).tolist()
            decoded = molio.smiles(model, model.decode(z))
        for s, pred in zip(decoded, predicted):
            m = chem.mol(s)
            if m is None:
                continue
            key = chem.rdkit().MolToSmiles(m)
            if key in found:
                continue
            real = chem.property_values([m], args.property)[0] if scored_by_rdkit else None
            found[key] = {"smiles": key, "score": real, "predicted": pred, "step": step}

    for step in range(args.steps + 1):
        if step % DECODE_EVERY == 0 or step == args.steps:
            harvest(step)
        if step == args.steps:
            break
        opt.zero_grad()
        prior = -0.5 * (z * z).sum(-1)  # log N(z; 0, I) up to a constant
        loss = -(objective(z) + args.prior_weight * prior).sum()
        loss.backward()
        opt.step()
    key = "score" if scored_by_rdkit else "predicted"
    best = sorted(
        (r for r in found.values() if r[key] is not None and r[key] == r[key]),
        key=lambda r: -r[key],
    )[: args.top]
    starts = chem.property_values([chem.mol(s) for s in molio.smiles(model, train[pick])],
                                  args.property) if scored_by_rdkit else None  # fmt: skip
    if args.out and best:
        molio.write(
            [r["smiles"] for r in best], Path(args.out), title=f"{args.property}: best found"
        )
    if args.json:
        print(json.dumps({"property": args.property, "objective": how, "molecules": best}))
        return common.EXIT_OK
    print(
        f"{model.name}: {args.steps} steps from {len(pick)} training molecules, climbing {how}; "
        f"{len(found)} distinct valid molecules met"
    )
    if starts is not None and len(starts):
        import numpy as np

        print(f"the starting molecules' best {args.property}: {np.nanmax(starts):.3f}")
    if not best:
        print("no valid molecule was decoded; train longer or lower --lr")
        return common.EXIT_OK
    real = f"RDKit {args.property}" if scored_by_rdkit else "(no RDKit score)"
    print(f"{'rank':>4}  {real:>14}  {'head':>8}  {'step':>4}  SMILES")
    for i, r in enumerate(best, 1):
        score = f"{r['score']:.3f}" if r["score"] is not None else "-"
        print(f"{i:>4}  {score:>14}  {r['predicted']:8.3f}  {r['step']:>4}  {r['smiles']}")
    if args.out:
        print(f"wrote the best {len(best)} to {args.out}")
    return common.EXIT_OK
