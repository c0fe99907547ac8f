"""The table in words, written from the numbers: which model is best on likelihood, on
samples and on speed, which numbers do not compare and why, and what the budget did.

Every sentence is derived from the report's rows; nothing here knows a model by name."""

from __future__ import annotations

from typing import Any

# what each kind of NLL is, in the words of a sentence
KIND_WORDS = {
    "exact": "exact",
    "bound": "an upper bound on its NLL",
    "estimate": "an estimate (importance-sampled: an upper bound in expectation)",
}
# why a family samples slowly, for the sentence on speed
SLOW_BECAUSE = {
    "autoregressive": "an autoregressive model draws one dimension after another",
    "diffusion": "a diffusion model runs its network once per denoising step",
    "text": "a language model draws one token after another",
}
# precision at least this with recall below that: samples of few kinds (a collapsed GAN)
COLLAPSE_PRECISION, COLLAPSE_RECALL = 0.5, 0.1
# a share of the budget above which a run counts as stopped by it, not by early stopping
BUDGET_USED = 0.9


def _m(row: dict[str, Any], key: str) -> float | None:
    s = row["metrics"].get(key)
    return None if s is None else s["mean"]


def _names(rows: list[dict[str, Any]]) -> str:
    names = [r["label"] for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _kind(row: dict[str, Any]) -> str:
    words = KIND_WORDS.get(row["kind"], row["kind"])
    if row["kind"] == "estimate" and row.get("num_samples"):
        words = words.replace("estimate", f"estimate with K={row['num_samples']}", 1)
    return words


def likelihood(report: dict[str, Any]) -> list[str]:
    rows = [r for r in report["models"] if _m(r, "nll_nats") is not None]
    none = [r for r in report["models"] if _m(r, "nll_nats") is None]
    out: list[str] = []
    if not rows:
        if none:
            out.append("No model here has a likelihood: they compare on their samples only.")
        return out
    rows.sort(key=lambda r: _m(r, "nll_nats"))
    best = rows[0]
    bpd = _m(best, "bpd")
    unit = report["data"].get("bpd_unit", "bits/dim")
    out.append(
        f"Best on likelihood: {best['label']}, {_m(best, 'nll_nats'):.2f} nats"
        + (f" ({bpd:.3f} {unit})" if bpd is not None else "")
        + f", {_kind(best)}."
    )
    loose = [r for r in rows if r["kind"] in ("bound", "estimate")]
    exact = [r for r in rows if r["kind"] == "exact"]
    if loose and exact:
        these = (
            f"The NLL of {_names(loose)} is an upper bound (or an estimate of one)"
            if len(loose) == 1
            else f"The NLLs of {_names(loose)} are upper bounds (or estimates of one)"
        )
        those = (
            f"that of {_names(exact)} is exact" if len(exact) == 1
            else f"those of {_names(exact)} are exact"
        )  # fmt: skip
        out.append(
            f"{these} while {those}: a bound above an exact number does not show that its "
            "model is worse (its true NLL may be lower), but a bound below one shows that its "
            "model is better."
        )
        wins = [
            f"{b['label']} ({_m(b, 'nll_nats'):.2f}) beats {e['label']} ({_m(e, 'nll_nats'):.2f})"
            for b in loose
            for e in exact
            if _m(b, "nll_nats") < _m(e, "nll_nats")
        ]
        if wins:
            out.append("So, whatever the true values: " + "; ".join(wins) + ".")
    elif loose and len(loose) > 1:
        out.append(
            f"Every NLL here is an upper bound or an estimate of one ({_names(loose)}): their "
            "order may not be the order of the true NLLs, which each bound's gap hides."
        )
    if none:
        ais = (
            "a continuous density that does not compare with these discrete NLLs"
            if report["data"].get("levels")
            else "a stochastic lower bound on its log-density"
        )
        out.append(
            f"{_names(none)} {'has' if len(none) == 1 else 'have'} no likelihood: compared on "
            f"samples only (dgm eval --metrics ais estimates a GAN's density under Gaussian "
            f"noise, {ais})."
        )
    spreads = [r for r in rows if (r["metrics"]["nll_nats"].get("std") is not None)]
    if spreads:
        widest = max(spreads, key=lambda r: r["metrics"]["nll_nats"]["std"])
        out.append(
            f"Over {len(widest['seeds'])} seeds the NLL moves by up to "
            f"{widest['metrics']['nll_nats']['std']:.2f} nats (the spread of {widest['label']}): "
            "smaller differences are seed noise."
        )
    elif len(rows) > 1:
        out.append(
            "One seed each: differences of a nat or so may be seed noise (--seeds 3 gives each "
            "model's spread)."
        )
    return out


def samples(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    rows = [r for r in report["models"] if _m(r, "fd") is not None]
    n = report["settings"].get("num_generated")
    if rows:
        rows.sort(key=lambda r: _m(r, "fd"))
        best, worst = rows[0], rows[-1]
        text = f"Best on samples: {best['label']}, Frechet distance {_m(best, 'fd'):.2f}"
        if len(rows) > 1:
            text += f" (the worst: {worst['label']}, {_m(worst, 'fd'):.2f})"
        out.append(text + " in the features of dgm's classifier of this data.")
        prec = [r for r in rows if _m(r, "precision") is not None]
        if len(prec) > 1:
            p = max(prec, key=lambda r: _m(r, "precision"))
            c = max(prec, key=lambda r: _m(r, "recall") or 0.0)
            out.append(
                f"Most faithful samples (precision): {p['label']}, {_m(p, 'precision'):.3f}; "
                f"most diverse (recall): {c['label']}, {_m(c, 'recall'):.3f}."
            )
        collapsed = [
            r for r in prec
            if _m(r, "precision") >= COLLAPSE_PRECISION and (_m(r, "recall") or 0) < COLLAPSE_RECALL
        ]  # fmt: skip
        for r in collapsed:
            out.append(
                f"{r['label']}: precision {_m(r, 'precision'):.3f} with recall "
                f"{_m(r, 'recall'):.3f}: its samples look real but cover little of the data "
                "(mode collapse)."
            )
        if n:
            out.append(
                f"Every model drew the same {n} samples: the Frechet distance is biased upwards "
                "at small sample counts, so it compares at equal counts only, as here."
            )
        lik = [r for r in report["models"] if _m(r, "nll_nats") is not None]
        if lik and len(rows) > 1:
            top = min(lik, key=lambda r: _m(r, "nll_nats"))
            if top["label"] != best["label"]:
                out.append(
                    f"The best likelihood ({top['label']}) is not the best samples "
                    f"({best['label']}): the two measure different things (Theis et al. 2016)."
                )
    total = report["data"].get("num_classes")
    missing = [r for r in report["models"] if total and (_m(r, "classes_covered") or total) < total]
    if missing:
        found = ", ".join(f"{r['label']} {_m(r, 'classes_covered'):.0f}" for r in missing)
        out.append(
            f"Samples that miss classes (of {total}, as the feature network sees them): {found}: "
            "dropped modes, or samples too poor to be recognised."
        )
    modes = [r for r in report["models"] if _m(r, "modes_covered") is not None]
    if modes:
        m = max(modes, key=lambda r: (_m(r, "modes_covered"), _m(r, "high_quality") or 0))
        total = _m(m, "modes_total")
        out.append(
            f"Most modes covered: {m['label']}, {_m(m, 'modes_covered'):.0f}"
            + (f" of {total:.0f}" if total else "")
            + f", with {_m(m, 'high_quality'):.1%} of its samples near a mode."
        )
    return out


def speed(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    rows = [r for r in report["models"] if _m(r, "sample_ms") is not None]
    if len(rows) > 1:
        rows.sort(key=lambda r: _m(r, "sample_ms"))
        fast, slow = rows[0], rows[-1]
        ratio = _m(slow, "sample_ms") / max(_m(fast, "sample_ms"), 1e-9)
        why = SLOW_BECAUSE.get(slow["family"])
        out.append(
            f"Fastest sampler: {fast['label']}, {_m(fast, 'sample_ms'):.3g} ms a sample; "
            f"slowest: {slow['label']}, {_m(slow, 'sample_ms'):.3g} ms ({ratio:,.0f}x)"
            + (f": {why}." if why else ".")
        )
    budget = report["settings"].get("budget_s")
    if budget:
        capped = [
            r for r in report["models"]
            if (_m(r, "train_time_s") or 0) >= BUDGET_USED * budget
        ]  # fmt: skip
        early = [r for r in report["models"] if r not in capped and "early" in r["stopped"]]
        if early:
            out.append(f"{_names(early)} stopped early: their validation score no longer improved.")
        if capped:
            out.append(
                f"{_names(capped)} used the whole {budget:g} s budget: more time would likely "
                "improve {0}.".format("its numbers" if len(capped) == 1 else "their numbers")
            )
    return out


def detection(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, what in (("auroc_noise", "uniform noise"), ("auroc_inverted", "inverted inputs")):
        rows = [r for r in report["models"] if _m(r, key) is not None]
        if not rows:
            continue
        weak = [r for r in rows if _m(r, key) < 0.99]
        if not weak:
            out.append(f"Every likelihood model tells {what} from test inputs (AUROC >= 0.99).")
        else:
            out.append(
                f"Against {what}, "
                + ", ".join(f"{r['label']} reaches AUROC {_m(r, key):.3f}" for r in weak)
                + " (below 0.99): "
                + ("its likelihood ranks" if len(weak) == 1 else "their likelihoods rank")
                + " some of them as likely as test inputs."
            )
    named = sorted({c["key"] for c in report["columns"]} - {"auroc_noise", "auroc_inverted"})
    for key in (k for k in named if k.startswith("auroc_")):
        rows = sorted(
            (r for r in report["models"] if _m(r, key) is not None), key=lambda r: -_m(r, key)
        )
        if rows:
            out.append(
                f"Against {key[6:]}: best {rows[0]['label']}, AUROC {_m(rows[0], key):.3f}"
                + (" (0.5 is chance)." if _m(rows[0], key) < 0.7 else ".")
            )
    cls = [r for r in report["models"] if _m(r, "accuracy") is not None]
    for r in cls:
        ece = _m(r, "ece")
        out.append(
            f"{r['label']} also classifies: test accuracy {_m(r, 'accuracy'):.3f}"
            + (f", calibration error {ece:.3f}" if ece is not None else "")
            + "."
        )
    return out


def reading(report: dict[str, Any]) -> list[str]:
    """Sentences on the report's table, from its numbers (likelihood, samples, speed and
    budget, detection and classification), plus the models left out."""
    out = likelihood(report) + samples(report) + speed(report) + detection(report)
    for s in report.get("skipped", []):
        out.append(f"Left out: {s['model']}: {s['why']}")
    return out


__all__ = ["reading"]
