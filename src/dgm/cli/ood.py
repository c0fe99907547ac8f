"""dgm ood RUN --out DATA: score in-distribution (--in) and out-of-distribution (--out) test
inputs with every OOD score that applies to the run's model (dgm.evaluation.ood), and report
AUROC, AUPR and the false-positive rate at 95% true-positive rate (OOD is the positive
class), with histograms of the scores. --out may also be 'noise' or 'inverted' (built from
--in). Text runs take text data (e.g. a PTB run with --out tinyshakespeare, or a .txt file):
it is encoded with the run's own tokenizer and maximum length, so both sets are sentences
the model can score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dgm.cli import common
from dgm.cli import text as textio
from dgm.cli.detect import add_shared, quick_num_samples


def add_parser(sub: Any) -> None:
    summary = "out-of-distribution detection: AUROC, AUPR and FPR95 of every score"
    o = sub.add_parser("ood", help=summary, description=__doc__)
    o.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    o.add_argument(
        "--in", dest="in_data", default=None, help="in-distribution data (default: the run's)"
    )
    o.add_argument(
        "--out", dest="out_data", required=True, help="OOD data: a dataset, a path, noise, inverted"
    )
    o.add_argument("--split", default="test", choices=["train", "val", "test"])
    o.add_argument("--limit", type=int, default=None, metavar="N", help="first N inputs of each")
    o.add_argument(
        "--background",
        default=None,
        metavar="RUN",
        help="a run of the same model on perturbed inputs (dgm train ... --set perturb=0.2), "
        "for the likelihood ratio (Ren et al. 2019)",
    )
    o.add_argument(
        "--compressor",
        default="png",
        choices=["png", "zlib", "bz2", "lzma"],
        help="lossless compressor of the input-complexity score (Serra et al. 2020)",
    )
    add_shared(o)
    o.add_argument("--plot", default=None, metavar="FILE.png", help="default: RUN/ood-IN-OUT.png")
    o.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _same_kind(model: Any, spec: Any, what: str) -> None:
    """Text for a text model, arrays for the others: one line otherwise."""
    if spec.is_text and not textio.is_text_model(model):
        textio.refuse_text(model, what)
    if textio.is_text_model(model) and not spec.is_text:
        textio.refuse_non_text(model, what)


def run(args: argparse.Namespace) -> int:
    from dgm.evaluation.ood import SCORES, TEXT_SCORES

    out = evaluate(args)
    report, best = out["scores"], out["best"]
    if args.json:
        print(json.dumps(out))
        return common.EXIT_OK
    print(
        f"{out['model']}: {out['in']} (in, n={out['n_in']}) vs {args.out_data} "
        f"(out, n={out['n_out']}), {args.split} split"
    )
    print(f"  {'score':<20} {'AUROC':>7} {'AUPR':>7} {'FPR95':>7}")
    for name, m in report.items():
        mark = "  <- best" if name == best else ""
        print(f"  {name:<20} {m['auroc']:7.4f} {m['aupr']:7.4f} {m['fpr95']:7.4f}{mark}")
    for name in report:
        print(f"  {name}: {SCORES.get(name) or TEXT_SCORES.get(name, '')}")
    for note in out["notes"]:
        print(f"  note: {note}")
    print(f"  histograms: {out['plot']}")
    return common.EXIT_OK


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Every number ``dgm ood`` prints for the parsed ``args``, as one JSON-able dict (what
    ``--json`` prints; ``dgm compare`` and ``dgm report`` call this with the same args)."""
    import torch

    from dgm.data.inputs import DERIVED, derived_inputs
    from dgm.evaluation.likelihood import per_example_nll
    from dgm.evaluation.ood import ood_report, score_inputs, unavailable_scores
    from dgm.plotting import save_score_histograms

    common.check_positive(args.limit, "--limit")
    common.check_output(args.plot, "--plot")
    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    common.refuse_audio(model, "dgm ood")
    common.require_likelihood(model)
    ds_in = loaded.dataset(args.in_data, args.data_dir)
    in_name = loaded.data_name(args.in_data)
    _same_kind(model, ds_in.spec, f"--in {in_name}")
    x_in = common.split_inputs(ds_in, args.split, args.limit)
    common.check_levels(model, x_in, f"--in {in_name}")
    if args.out_data in DERIVED:
        x_out = derived_inputs(args.out_data, x_in, ds_in.spec, args.seed)
    else:
        # a text run's tokenizer and max_len encode the other text too (ignored by images)
        ds_out = loaded.dataset(args.out_data, args.data_dir)
        _same_kind(model, ds_out.spec, f"--out {args.out_data}")
        x_out = common.split_inputs(ds_out, args.split, args.limit)
    common.check_levels(model, x_out, f"--out {args.out_data}")
    background = None
    if args.background:
        background = common.load_run(args.background, args.device).model
        common.require_likelihood(background)
        common.check_levels(background, x_in[:1], f"--background {args.background}")
    k = quick_num_samples(args, model)
    torch.manual_seed(args.seed)
    reference = common.split_inputs(ds_in, "val", args.limit)
    common.err(
        f"scoring {reference.shape[0]} validation, {x_in.shape[0]} in and "
        f"{x_out.shape[0]} out inputs"
    )
    reference_nll = per_example_nll(model, reference, args.batch_size, num_samples=k)
    shared = {
        "reference_nll": reference_nll,
        "background": background,
        "compressor": args.compressor,
        "num_samples": k,
        "batch_size": args.batch_size,
    }
    scores_in = score_inputs(model, x_in, **shared)
    scores_out = score_inputs(model, x_out, **shared)
    report = ood_report(scores_in, scores_out)
    plot = Path(args.plot) if args.plot else loaded.folder.ood_plot(in_name, args.out_data)
    save_score_histograms(
        {k_: v.numpy() for k_, v in scores_in.items()},
        {k_: v.numpy() for k_, v in scores_out.items()},
        plot,
        in_name=in_name,
        out_name=str(args.out_data),
        metrics=report,
    )
    missing = unavailable_scores(
        model, reference_nll=reference_nll, background=background, compressor=args.compressor
    )
    notes = [f"{name}: {why}" for name, why in missing.items()]
    best = max(report, key=lambda s: report[s]["auroc"]) if report else None
    out = {
        "model": model.name,
        "run": str(args.run),
        "in": in_name,
        "out": str(args.out_data),
        "split": args.split,
        "n_in": int(x_in.shape[0]),
        "n_out": int(x_out.shape[0]),
        "scores": report,
        "best": best,
        "plot": str(plot),
        "notes": notes,
        **({"num_samples": k} if k else {}),
    }
    return out
