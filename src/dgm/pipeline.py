"""Train, then evaluate the kept weights, then write the report: the one module that knows the
order of the three, above :mod:`dgm.training` (which knows no evaluation) and
:mod:`dgm.evaluation` (which reads models through the contract only).

``train`` is what ``dgm train`` runs, also from Python::

    from dgm.data import load_dataset
    from dgm.pipeline import train

    results = train("arm", load_dataset("digits"), "runs/py", {"hidden": 64}, {"epochs": 5})
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dgm.data.base import Dataset
from dgm.errors import CheckpointError
from dgm.evaluation.audio import evaluate_audio
from dgm.evaluation.classification import classifies, evaluate_classifier
from dgm.evaluation.likelihood import TRAINING_SAMPLES, evaluate_likelihood, num_samples_for
from dgm.evaluation.quality import coverage_line
from dgm.evaluation.sample_quality import default_quality_metrics, evaluate_sample_quality
from dgm.evaluation.text import is_text
from dgm.models.base import GenerativeModel
from dgm.models.capabilities import DecoderMean, ReceptiveField
from dgm.plotting import (
    AUDIO_PANELS,
    save_audio_samples,
    save_curves,
    save_density,
    save_samples,
)
from dgm.runs import RunFolder
from dgm.training import TrainConfig, build, fit

# samples scored at the end of a molecule model's training (dgm eval --num-generated for more)
MOLECULES_AT_END = 1000

Show = Callable[[str], None]
# below this KL (nats) a latent code carries next to nothing: the posterior has collapsed
COLLAPSED_KL = 0.1


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def train(
    model_name: str,
    dataset: Dataset,
    out: str | Path,
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | dict[str, Any] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data_meta: dict[str, Any] | None = None,
    show: Show = _stderr,
) -> dict[str, Any]:
    """Train ``model_name`` on ``dataset`` into run folder ``out``, evaluate the kept weights on
    the test split and write results.json and summary.md; return the results (``{}`` in every
    process but the one that writes files). ``resume=True`` continues the run in ``out``,
    ``overwrite=True`` reuses a folder that holds files, ``data_meta`` says where the data came
    from (config.json keeps it)."""
    model, cfg = build(model_name, dataset.spec, model_config, train_config)
    fitted = fit(
        model, dataset, out, cfg, resume=resume, overwrite=overwrite, data_meta=data_meta,
        show=show,
    )  # fmt: skip
    if fitted is None:
        return {}
    return finish(
        fitted.run, dataset, fitted.config, fitted.elapsed, device=fitted.device, show=show
    )


def finish(
    run: str | Path,
    dataset: Dataset,
    cfg: TrainConfig,
    elapsed: float,
    device: torch.device | None = None,
    show: Show = _stderr,
) -> dict[str, Any]:
    """Reload the kept model from the run folder; write samples, curves, the test numbers and
    the summary."""
    run = RunFolder(run)
    if not run.has_weights():
        raise CheckpointError(f"{run}: training ended before any validation; no model to keep")
    model = run.load_model(map_location=str(device) if device is not None else None)
    records = run.read_metrics()
    save_curves(records, run.loss_plot, title=f"{model.name} on {dataset.spec.name}")
    audio = dataset.spec.is_audio
    t0 = time.perf_counter()  # audio: a few utterances, each drawn one sample at a time
    samples = model.sample(min(cfg.num_samples, AUDIO_PANELS) if audio else cfg.num_samples)
    sample_s = time.perf_counter() - t0
    # a decoder's means show what it learnt; its draws add per-pixel noise (dgm sample --mode)
    shown, what = (
        (model.sample_mean(cfg.num_samples), "decoder means E[x|z]")
        if isinstance(model, DecoderMean) and not audio
        else (samples, "samples")
    )
    two_d = tuple(dataset.spec.shape) == (2,)  # drawn over the data, on the data's range
    # text: sentences, in summary.md; a picture of token ids would say nothing
    sentences = model.texts(samples) if is_text(model) else None
    if sentences is not None:
        run.write_samples_text(sentences)
    if audio:  # wav files a person can hear, and their waveforms over spectrograms
        save_audio_samples(
            samples, dataset.spec, run.samples_audio, run.samples_plot,
            title=f"{model.name}: samples ({dataset.spec.sample_rate} Hz)",
        )  # fmt: skip
    elif sentences is None:
        save_samples(
            shown, dataset.spec, run.samples_plot, title=f"{model.name}: {what}",
            data=dataset.test.x[:5000] if two_d and len(dataset.test) else None,
        )  # fmt: skip
    if dataset.spec.shape == (2,) and dataset.spec.levels is None and model.exact_likelihood:
        # a 2-D density can be looked at directly, next to the data and the samples
        more = model.sample(2000) if cfg.num_samples < 2000 else samples
        save_density(
            model.picture_log_prob, dataset.test.x[:5000], more, run.density_plot,
            title=f"{model.name} on {dataset.spec.name}",
        )  # fmt: skip
    key = f"val_{model.monitor}"
    scored = [r for r in records if r.get(key) is not None]
    best = min(scored, key=lambda r: r[key]) if scored else {}
    if not model.has_likelihood and records and not scored:  # the latest weights were kept
        best = {"epoch": records[-1]["epoch"]}
    # no likelihood but a measure of the samples (a GAN on vectors): the kept epoch's value
    sample_score = {key: best[key]} if not model.has_likelihood and key in best else {}
    results: dict[str, Any] = {
        "model": model.name,
        "data": dataset.spec.name,
        "parameters": model.num_parameters(),
        **({"receptive_field": model.receptive_field} if isinstance(model, ReceptiveField) else {}),
        "epochs": len(records),
        "best_epoch": best.get("epoch"),
        "val_nll_nats": best.get("val_nll"),
        **sample_score,
        "train_time_s": round(elapsed, 2),
        "precision": cfg.precision,
        "sample_time_s": round(sample_s, 3),
    }
    if cfg.test and len(dataset.test):
        results.update(_test_results(model, dataset, cfg, run, show))
    run.write_results(results)
    run.write_summary(summary(run, model, dataset, cfg, results, sentences))
    if results["val_nll_nats"] is not None:
        show(
            f"best epoch {results['best_epoch']}: val nll {results['val_nll_nats']:.3f} nats; "
            f"{results['epochs']} epochs in {elapsed:.1f}s"
        )
    else:
        show(
            f"{results['epochs']} epochs in {elapsed:.1f}s; kept epoch {results['best_epoch']}"
            + (_sample_score_line(model.monitor, best) if sample_score else "")
        )
    if "test_modes_covered" in results:  # the Gaussian-mixture toys
        show("test: " + coverage_line({k[5:]: v for k, v in results.items() if k[:5] == "test_"}))
    if "test_accuracy" in results:
        show(
            f"test accuracy {results['test_accuracy']:.4f}, expected calibration error "
            f"{results['test_ece']:.4f}"
        )
    if "test_ppl" in results:  # text: per sentence, and per token
        show(
            f"test nll {results['test_nll_nats']:.3f} nats per "
            f"{results.get('test_unit', 'sentence')}, perplexity "
            f"{results['test_ppl']:.2f} ({results['test_nats_per_token']:.4f} nats per token) "
            f"on {results['test_n']} test {results.get('test_unit', 'sentence')}s"
        )
    elif "test_bits_per_sample" in results:  # audio: whole utterances
        bound = "" if model.exact_likelihood else "<= "  # the VQ-VAE's is a bound
        show(
            f"test nll {bound}{results['test_bits_per_sample']:.4f} bits per sample "
            f"({results['test_nll_nats']:.1f} nats per utterance) on {results['test_n']} test "
            f"utterances, {results['test_seconds']:.1f} s of audio"
        )
    elif "test_nll_nats" in results:
        show(
            f"test nll {results['test_nll_nats']:.3f} nats ({results['test_bpd']:.4f} bits/dim) "
            f"on {results['test_n']} test examples"
        )
    if "test_active_units" in results:
        show(
            f"test latent code: KL {results['test_kl']:.3f} nats, I(x; z) "
            f"{results['test_mi']:.3f} nats, {results['test_active_units']} active units"
        )
        collapse = collapse_line(results, model.name)
        if collapse:
            show(collapse)
    if sentences is not None:
        for line in sentences[:3]:
            show(f"sample: {line}")
        show(
            f"wrote {run.samples_text}, {run.loss_plot}, {run.summary_file} (with "
            f"{min(10, len(sentences))} samples)"
        )
    elif audio:
        show(f"wrote {run.samples_audio}/ (wav), {run.samples_plot}, {run.loss_plot}, "
             f"{run.summary_file}")  # fmt: skip
    else:
        show(f"wrote {run.samples_plot}, {run.loss_plot}, {run.summary_file}")
    return results


def collapse_line(results: dict[str, Any], model: str) -> str | None:
    """The line that says a latent code collapsed (no active unit, or a KL below
    :data:`COLLAPSED_KL` on the test split), said plainly as a GAN's collapse is: the numbers
    alone hide it. None when the code is in use or the model reports no code."""
    if "test_active_units" not in results:
        return None
    if results["test_active_units"] > 0 and results["test_kl"] >= COLLAPSED_KL:
        return None
    return (
        f"the latent code collapsed (KL {results['test_kl']:.3f} nats, "
        f"{results['test_active_units']} active units): the decoder ignores z; KL annealing, "
        f"word dropout or free bits keep it in use (see 'dgm list {model}')"
    )


def _sample_score_line(monitor: str, record: dict[str, Any]) -> str:
    """``: val mmd 0.0123 (...)``: the kept epoch's measure of its samples and whether the
    moving average of the weights or the raw weights scored better (the better is kept)."""
    value, raw, ema = (record.get(f"val_{monitor}{s}") for s in ("", "_raw", "_ema"))
    which = ""
    if raw is not None and ema is not None:
        which = (
            f" (raw weights; their moving average scored {ema:.4f})"
            if raw < ema
            else f" (moving average of the weights; the raw ones scored {raw:.4f})"
        )
    return f": val {monitor} {value:.4f}{which}"


def _test_results(
    model: GenerativeModel, dataset: Dataset, cfg: TrainConfig, run: RunFolder, show: Show
) -> dict[str, Any]:
    """The kept model on the test split, keys prefixed ``test_``: its likelihood (the bound
    trained on, where it is an estimate), or the quality of its samples for models without
    one; accuracy and calibration for models that classify."""
    test = dataset.test
    out: dict[str, Any] = {}
    if not model.has_likelihood:
        # no likelihood (GANs): how good the samples are, with dgm's own feature network
        if default_quality_metrics(dataset):
            out.update(evaluate_sample_quality(model, dataset, run, show=show))
        else:
            show(
                f"note: {dataset.spec.name} has no labels for a feature network: no sample "
                "quality measured; dgm eval RUN --features DIR can use another run's"
            )
    elif dataset.spec.is_audio:  # whole utterances, in bits per sample
        out.update(evaluate_audio(model, test))
    else:
        k = num_samples_for(model, cap=TRAINING_SAMPLES)
        nll = evaluate_likelihood(model, test.x, cfg.eval_batch_size, k)
        out.update({k_: v for k_, v in nll.items() if k_ != "exact"})
    if dataset.molecules is not None and is_text(model):
        out.update(_molecule_results(model, dataset, run, show))
    if test.y is not None and classifies(model):
        labels = evaluate_classifier(model, test.x, test.y, cfg.eval_batch_size)
        out.update({k_: v for k_, v in labels.items() if k_ != "n"})
    return {f"test_{k_}": v for k_, v in out.items()}


def _molecule_results(
    model: GenerativeModel, dataset: Dataset, run: RunFolder, show: Show
) -> dict[str, Any]:
    """The MOSES metrics of MOLECULES_AT_END samples (validity, uniqueness, novelty against the
    training molecules, and against the test ones), and properties.png: their logP, QED, SA and
    weight next to the test set's."""
    from dgm.evaluation.molecules import evaluate_molecules
    from dgm.plotting import property_histograms

    mols = dataset.molecules
    assert mols is not None
    scores = evaluate_molecules(model, mols.train, mols.test, MOLECULES_AT_END)
    m = scores.metrics
    p = scores.properties
    if any(len(v) for v in p.gen_values.values()):
        property_histograms(
            p.gen_values, p.ref_values, run.properties_plot,
            title=f"{model.name}: {m['n']} samples vs the test molecules",
            distances=p.distances, gen_name="samples", ref_name="test",
        )  # fmt: skip
    show(
        f"molecules ({m['n']} samples): validity {m['validity']:.3f}, unique@1000 "
        f"{_fmt(m.get('unique@1000'))}, novelty {_fmt(m.get('novelty'))}"
        + (f"; wrote {run.properties_plot}" if run.properties_plot.exists() else "")
    )
    kept = {k: v for k, v in m.items() if isinstance(v, int | float) and k not in ("n", "valid")}
    return kept | {"molecules_generated": m["n"]}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def summary(
    run: RunFolder,
    model: GenerativeModel,
    dataset: Dataset,
    cfg: TrainConfig,
    res: dict[str, Any],
    sentences: list[str] | None = None,
) -> str:
    """summary.md: what was trained, on what, how well, and how to use it (for text, with
    ``sentences`` the model drew)."""

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    rows = "\n".join(f"| {k} | {fmt(v)} |" for k, v in res.items())
    model_cfg = ", ".join(f"{k}={v}" for k, v in run.read_config()["config"].items())
    # the note of the number reported (with the K it used), else the model's own
    note = res.get("test_estimate") or model.likelihood_note()
    nll_line = (
        f"NLL in nats per example ({note}); bits/dim = nats / (D ln 2), D = {dataset.spec.dim}"
        if model.has_likelihood
        else "no likelihood: sample quality on dgm's own feature network (see its line above)"
    )
    if dataset.spec.is_audio:  # whole utterances, not crops
        nll_line = (
            f"NLL in nats per utterance ({note}), summed over every sample of each whole test "
            f"utterance; bits per sample = total nats / (total samples ln 2), at "
            f"{dataset.spec.sample_rate} Hz, {dataset.spec.encoding} levels; training read crops "
            f"of {dataset.spec.shape[0]} samples"
        )
    if is_text(model):  # padding is no dimension: text is counted in tokens
        nll_line = (
            f"NLL in nats per sentence ({note}); perplexity = exp(total NLL "
            "/ total tokens), the tokens of a sentence its words (or characters) and its end "
            "token, never padding; bpd here is bits per token"
        )
        if res.get("test_active_units") is not None:
            nll_line += (
                "; kl = mean KL(q(z|x) || p(z)), mi = I(x; z) (He et al. 2019), active_units: "
                "dimensions with Cov_x(E_q[z]) > 0.01 (Burda et al. 2016), on the test split"
            )
    return f"""# {model.name} on {dataset.spec.name}

| result | value |
|---|---|
{rows}

- model config: {model_cfg}
- training: optimizer {cfg.optimizer}, lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed}, \
patience {cfg.patience}, ema {cfg.ema}, precision {cfg.precision}
- data: {dataset.source or dataset.spec.name}; {len(dataset.train)} train / {len(dataset.val)} \
val / {len(dataset.test)} test; shape {tuple(dataset.spec.shape)}, levels {dataset.spec.levels}
- {nll_line}
- machine: {platform.platform()}, torch {torch.__version__}

{_samples_block(run, sentences, dataset.spec.is_audio)}"""


def _samples_block(run: RunFolder, sentences: list[str] | None, audio: bool = False) -> str:
    """How to use the run, and for text the sentences it drew."""
    use = f"`dgm eval {run} --json`, `dgm sample {run} -n 64 --out samples.png`"
    if audio:  # wav files in a folder; the feature network's measures
        use = (
            f"`dgm eval {run} --json` (add `--metrics nll,fd,accuracy`), `dgm sample {run} -n 8 "
            f"--out samples/` (wav files; `--label`, `--speaker`)"
        )
    if sentences is None:
        return f'Use it: {use},\nor in Python `model = dgm.load("{run}")`.\n'
    lines = "\n".join(f"    {s}" for s in sentences[:10])
    return (
        f"Samples (temperature 1):\n\n{lines}\n\nUse it: `dgm eval {run} --json`, "
        f"`dgm sample {run} -n 10`, `dgm detect {run} FILE.txt`,\nor in Python "
        f'`model = dgm.load("{run}")`.\n'
    )


__all__ = ["finish", "summary", "train"]
