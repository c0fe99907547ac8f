"""``dgm eval RUN``: a run's NLL in nats and bits/dim (with what kind of number it is), the AIS
estimate of a GAN generator, the quality of its samples, and accuracy for models that
classify. Text models: NLL per sentence, perplexity and nats per token (``bpd`` is bits per
token there); latent models that declare their collapse diagnostics add ``kl``, ``mi`` and
``active_units``."""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from dgm.cli import common
from dgm.errors import ConfigError, DataError


def add_parser(sub: Any) -> None:
    e = sub.add_parser(
        "eval", help="evaluate a run: NLL in nats and bits/dim, or the quality of its samples"
    )
    e.add_argument("run", metavar="RUN", help="a run folder from 'dgm train'")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    common.add_num_samples(
        e,
        "default: the model's own, 5000 for latent-variable models as the papers, 1 for "
        "dequantised flows",
    )
    common.add_data(e, "evaluate on other data (default: the run's)")
    e.add_argument("--batch-size", type=int, default=500)
    common.add_device(e)
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.add_argument(
        "--metrics",
        default=None,
        metavar="LIST",
        help="comma-separated: nll, fd, precision, recall, classes, modes, accuracy, ais, "
        "molecules, reconstruction, swap (default: nll; for GANs fd,precision,recall, or modes "
        "on the Gaussian-mixture toys; for molecules nll,molecules and a VAE's reconstruction; "
        "audio takes nll, fd, accuracy and, for voice converters, swap)",
    )
    e.add_argument(
        "--features",
        default=None,
        metavar="DIR",
        help="the feature network's folder for fd/precision/recall (default: RUN/features, "
        "trained there on the data's labelled training split the first time)",
    )
    e.add_argument(
        "--num-generated",
        type=int,
        default=None,
        metavar="N",
        help="samples drawn for sample-quality metrics (default: the split's size, <= 10000)",
    )
    e.add_argument("--seed", type=int, default=0, help="seeds sampling and estimates")
    e.add_argument(
        "--limit", type=int, default=None, metavar="N", help="score only the first N examples"
    )
    e.add_argument(
        "--ais-steps",
        type=int,
        default=500,
        help="ais: annealing steps (Wu et al. use thousands; each costs 10 generator passes)",
    )
    e.add_argument("--ais-chains", type=int, default=8, help="ais: chains per example")
    e.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="ais: the observation noise (default: the best of a grid on 32 validation examples)",
    )


MOLECULE_METRICS = ("molecules", "reconstruction")
AUDIO_METRICS = ("nll", "fd", "accuracy", "swap")  # what audio runs are scored on
AUDIO_SAMPLES = 100  # samples of an audio model drawn by default (--num-generated)
MOLECULE_SAMPLES = 1000  # samples of a molecule model scored by default (--num-generated)


def model_reads_molecules(model: Any) -> bool:
    from dgm.cli.molecules import is_molecule_model

    return is_molecule_model(model)


def _molecules(args: argparse.Namespace, model: Any, dataset: Any, metrics: list[str], x: Any):
    """The MOSES metrics of the model's samples and a VAE's reconstruction accuracy."""
    from dgm.evaluation.molecules import evaluate_molecules, reconstruction_accuracy

    out: dict[str, Any] = {}
    mols = dataset.molecules
    if "molecules" in metrics:
        n = args.num_generated or MOLECULE_SAMPLES
        scores = evaluate_molecules(model, mols.train, mols.test, n, args.seed)
        out.update({k: v for k, v in scores.metrics.items() if k not in ("n", "notes")})
        out["generated"] = scores.metrics["n"]
        out["molecule_notes"] = scores.metrics.get("notes", [])
    if "reconstruction" in metrics:
        out.update(reconstruction_accuracy(model, x))
    return out


def _metrics(arg: str | None, model: Any, dataset: Any) -> list[str]:
    """The metrics to compute: ``--metrics``, or what suits the model."""
    from dgm.evaluation.sample_quality import QUALITY_METRICS, default_quality_metrics
    from dgm.models.capabilities import Autoencoder, ImplicitGenerator

    molecules = dataset.spec.is_molecules and model_reads_molecules(model)
    if dataset.spec.is_audio:
        return _audio_metrics(arg, model)
    if arg is None:
        if molecules:  # the likelihood, the MOSES metrics, and a VAE's reconstructions
            return ["nll", "molecules"] + (
                ["reconstruction"] if isinstance(model, Autoencoder) else []
            )
        if model.has_likelihood:
            return ["nll"]
        chosen = list(default_quality_metrics(dataset))
        if not chosen:
            raise DataError(
                f"{dataset.spec.name} has no labels to train a feature network on; use "
                "--metrics ais, or --features DIR of a run on labelled data of this shape"
            )
        return chosen
    chosen = [m.strip() for m in arg.split(",") if m.strip()]
    known = ("nll", "ais", *QUALITY_METRICS, *MOLECULE_METRICS)
    for m in chosen:
        if m not in known:
            raise ConfigError(f"unknown metric {m!r}; use {', '.join(known)}")
        if m in MOLECULE_METRICS and not molecules:
            raise ConfigError(f"--metrics {m} is for models of molecules; {model.name} is not one")
    if "reconstruction" in chosen and not isinstance(model, Autoencoder):
        raise ConfigError(f"--metrics reconstruction needs an encoder; {model.name} has none")
    if "nll" in chosen and not model.has_likelihood:
        raise ConfigError(
            f"{model.name} has no likelihood; use --metrics ais (an annealed importance sampling "
            "estimate) or fd,precision,recall"
        )
    if "ais" in chosen and not isinstance(model, ImplicitGenerator):
        raise ConfigError(
            f"ais estimates the likelihood of GAN generators; {model.name} has its own: use nll"
        )
    return chosen or ["nll"]


def _audio_metrics(arg: str | None, model: Any) -> list[str]:
    from dgm.models.capabilities import VoiceConverter

    chosen = ["nll"] if arg is None else [m.strip() for m in arg.split(",") if m.strip()]
    for m in chosen:
        if m not in AUDIO_METRICS:
            raise ConfigError(f"--metrics {m}: audio runs take {', '.join(AUDIO_METRICS)}")
    if "swap" in chosen and not (isinstance(model, VoiceConverter) and model.num_speakers):
        raise ConfigError(
            f"--metrics swap converts voices; {model.name} cannot (vqvae on audio with speakers)"
        )
    return chosen or ["nll"]


def _audio_quality(
    args: argparse.Namespace, loaded: Any, model: Any, dataset: Any, metrics: list[str]
) -> dict[str, Any]:
    """fd and accuracy of audio samples, swap of converted test utterances, in the features of
    dgm's audio classifier (RUN/features, trained the first time)."""
    from dgm.evaluation.audio_features import (
        AudioFeatureNet,
        audio_feature_net_for,
        audio_sample_quality,
        speaker_swap_accuracy,
    )
    from dgm.evaluation.features import load_feature_net

    if args.features:
        net = load_feature_net(args.features)
        if not isinstance(net, AudioFeatureNet):
            raise ConfigError(f"--features {args.features} is not an audio feature network")
    else:
        net = audio_feature_net_for(dataset, loaded.folder.features)
    common.err(f"features: {net.describe()}")
    out: dict[str, Any] = {}
    if "fd" in metrics or "accuracy" in metrics:
        n = AUDIO_SAMPLES if args.num_generated is None else args.num_generated
        if n < 2:
            raise ConfigError(f"--num-generated must be >= 2, got {n}")
        out.update(audio_sample_quality(model, dataset, net, n))
    if "swap" in metrics:
        out.update(speaker_swap_accuracy(model, dataset, net))
    return out


def _nll(args: argparse.Namespace, model: Any, x: Any, data: str) -> dict[str, Any]:
    from dgm.evaluation.likelihood import evaluate_likelihood, likelihood_kwargs, num_samples_for

    if model.exact_likelihood and args.num_samples is not None:
        common.err(f"note: {model.name} has an exact likelihood; --num-samples is not needed")
    k = num_samples_for(model, args.num_samples)
    # what is about to run, before the minutes K = 5000 can take (progress then shows the rest)
    draws = "draws averaged" if model.averaged_samples else "importance samples"
    each = "exact" if k is None else f"K={k} {draws} per example"
    common.err(
        f"nll of {model.name} on {x.shape[0]} {args.split} examples of {data} ({each}): "
        f"{model.likelihood_note(**likelihood_kwargs(k))}"
    )
    return evaluate_likelihood(model, x, args.batch_size, k)


def _audio_nll(args: argparse.Namespace, model: Any, dataset: Any, data: str) -> dict[str, Any]:
    from dgm.evaluation.audio import conditioning_note, evaluate_audio
    from dgm.models.capabilities import Waveform

    if not isinstance(model, Waveform):
        raise ConfigError(f"{data} is audio; {model.name} does not model audio")
    if args.num_samples is not None:
        common.err(f"note: {model.name} has an exact likelihood; --num-samples is not needed")
    split = dataset.split(args.split)
    n = len(split) if args.limit is None else min(args.limit, len(split))
    given = conditioning_note(model)
    common.err(
        f"nll of {model.name} on {n} whole {args.split} utterances of {data} "
        f"({model.likelihood_note()}{', ' + given if given else ''})"
    )
    return evaluate_audio(model, split, args.limit)


def _ais(args: argparse.Namespace, model: Any, dataset: Any, x: Any) -> dict[str, Any]:
    """AIS under a Gaussian observation model (Wu et al. 2017), sigma from validation data."""
    from dgm.evaluation.ais import model_ais, model_ais_log_prob, pick_sigma
    from dgm.models.capabilities import LabelConditional

    if args.ais_steps < 1 or args.ais_chains < 1:
        raise ConfigError("--ais-steps and --ais-chains must be >= 1")
    # AIS costs 10 x steps x chains generator passes per example: 100 examples by default
    x = x[: args.limit or 100]
    sigma = args.sigma
    if sigma is None:
        val = dataset.val.x[:32].to(model.device)
        common.err(f"choosing sigma by short AIS runs on {val.shape[0]} validation examples")
        # short runs (Wu et al. choose sigma on validation data with full ones): a few
        # seconds instead of minutes; they lean a little towards larger sigma
        sigma = pick_sigma(model, val, steps=20, chains=2, seed=args.seed)
    elif sigma <= 0:
        raise ConfigError(f"--sigma must be > 0, got {sigma}")
    t0 = time.perf_counter()
    run = {"steps": args.ais_steps, "chains": args.ais_chains, "seed": args.seed}
    diagnostics: dict[str, Any] = {}
    if isinstance(model, LabelConditional) and model.conditional:  # the mixture over classes
        lp = model_ais_log_prob(model, x.to(model.device), sigma, **run).double()
    else:
        res = model_ais(model, x.to(model.device), sigma, **run)
        lp = res.log_prob.double()
        diagnostics = {"ais_acceptance": res.acceptance, "ais_ess": float(res.ess.mean())}
    n = lp.numel()
    sem = float(lp.std() / math.sqrt(n)) if n > 1 else float("nan")
    return {
        **diagnostics,
        "n": n,
        "ais_nll_nats": float(-lp.mean()),
        "ais_sem": sem,
        "ais_sigma": sigma,
        "ais_steps": args.ais_steps,
        "ais_chains": args.ais_chains,
        "ais_time_s": round(time.perf_counter() - t0, 2),
        "ais_estimate": (
            f"annealed importance sampling (Wu et al. 2017), {args.ais_steps} steps x "
            f"{args.ais_chains} chains: log-density of x under x = G(z) + {sigma:g} eps, a "
            "continuous Gaussian observation model in the data's units, not a probability of "
            "discrete levels; a stochastic lower bound"
        ),
    }


def run(args: argparse.Namespace) -> int:
    out = evaluate(args)
    return _report(args, out, out["model"], out["data"])


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Every number ``dgm eval`` prints for the parsed ``args``, as one JSON-able dict (what
    ``--json`` prints; ``dgm compare`` and ``dgm report`` call this with the same args)."""
    import torch

    from dgm.evaluation.classification import classifies, evaluate_classifier
    from dgm.evaluation.sample_quality import QUALITY_METRICS, evaluate_sample_quality

    loaded = common.load_run(args.run, args.device)
    model = loaded.model
    name = loaded.data_name(args.data)
    dataset = loaded.dataset(args.data, args.data_dir)
    metrics = _metrics(args.metrics, model, dataset)
    x = common.split_inputs(dataset, args.split, args.limit)
    common.check_levels(model, x, name)
    torch.manual_seed(args.seed)
    out: dict[str, Any] = {"model": model.name, "data": name, "split": args.split}
    if dataset.spec.is_audio:  # whole utterances in bits per sample; samples, conversions
        from dgm.data.audio import check_rate
        from dgm.models.capabilities import Waveform

        if isinstance(model, Waveform) and model.sample_rate is not None:
            fix = f"give it files at {model.sample_rate} Hz (dgm eval reads files as they are)"
            check_rate(dataset.spec.sample_rate or 0, model.sample_rate, name, fix)
        if "nll" in metrics:
            out.update(_audio_nll(args, model, dataset, name))
        if set(metrics) - {"nll"}:
            out.update(_audio_quality(args, loaded, model, dataset, metrics))
        return _finish(args, out, int(x.shape[0]))
    if "nll" in metrics:
        out.update(_nll(args, model, x, name))
    if "ais" in metrics:
        out.update(_ais(args, model, dataset, x))
    if any(m in MOLECULE_METRICS for m in metrics):
        out.update(_molecules(args, model, dataset, metrics, x))
    quality = [m for m in metrics if m in QUALITY_METRICS]
    if quality:
        if args.num_generated is not None and args.num_generated < 2:
            raise ConfigError(f"--num-generated must be >= 2, got {args.num_generated}")
        out.update(
            evaluate_sample_quality(
                model,
                dataset,
                loaded.folder,
                metrics=quality,
                features=args.features,
                split=args.split,
                num_generated=args.num_generated,
                seed=args.seed,
                show=common.err,
            )
        )
        if "classes" in out:  # the classes the samples miss, by the data's names
            c = out["classes"]
            hist = enumerate(c["class_histogram"])
            c["missing"] = [dataset.spec.label_name(i) for i, k in hist if k < c["min_count"]]
    y = dataset.split(args.split).y
    if y is not None and "nll" in metrics and classifies(model):
        labels = evaluate_classifier(model, x, y[: x.shape[0]], args.batch_size)
        out.update({"accuracy": labels["accuracy"], "ece": labels["ece"],
                    "label_nll_nats": labels["label_nll"]})  # fmt: skip
    return _finish(args, out, int(x.shape[0]))


def _finish(args: argparse.Namespace, out: dict[str, Any], n: int) -> dict[str, Any]:
    out.setdefault("n", n)
    out["run"] = str(args.run)
    return out


def _report(args: argparse.Namespace, out: dict[str, Any], model: str, data: str) -> int:
    """Print the numbers: one JSON object with --json, else lines."""
    if args.json:
        print(json.dumps(out))
    else:
        _print(out, model, data, args.split)
    return common.EXIT_OK


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}"


def _print(out: dict[str, Any], model: str, data: str, split: str) -> None:
    print(f"{model} on {data} ({split}, n={out['n']}):")
    if "nll_nats" in out and "ppl" in out:  # text: per sentence, and per token
        print(
            f"  nll {out['nll_nats']:.3f} ± {out['nll_sem']:.3f} nats per "
            f"{out.get('unit', 'sentence')}; perplexity "
            f"{out['ppl']:.2f} ({out['nats_per_token']:.4f} nats, {out['bpd']:.4f} bits per "
            f"token, over {out['tokens']} tokens, end tokens included)"
        )
        if "elbo_nats" in out:
            print(
                f"  -elbo {out['elbo_nats']:.3f} ± {out['elbo_sem']:.3f} nats per "
                f"{out.get('unit', 'sentence')}"
            )
        print(f"  {out['estimate']}")
    elif "bits_per_sample" in out:  # audio: whole utterances
        print(
            f"  nll {out['bits_per_sample']:.4f} bits per sample ({out['nll_nats']:.1f} ± "
            f"{out['nll_sem']:.1f} nats per utterance; {out['samples']} samples, "
            f"{out['seconds']:.1f} s of audio)"
        )
        print(f"  {out['estimate']}")
    elif "nll_nats" in out:
        print(f"  nll {out['nll_nats']:.3f} ± {out['nll_sem']:.3f} nats, {out['bpd']:.4f} bits/dim")
        if "elbo_nats" in out:
            print(f"  -elbo {out['elbo_nats']:.3f} ± {out['elbo_sem']:.3f} nats")
        print(f"  {out['estimate']}")
    if "active_units" in out:
        print(
            f"  latent code: KL(q(z|x) || p(z)) {out['kl']:.3f} nats, mutual information "
            f"I(x; z) {out['mi']:.3f} nats, {out['active_units']} active units"
        )
    if "ais_nll_nats" in out:
        print(
            f"  ais nll {out['ais_nll_nats']:.3f} ± {out['ais_sem']:.3f} nats "
            f"(sigma {out['ais_sigma']:g})"
        )
        print(f"  {out['ais_estimate']}")
    if "ece" in out:
        print(
            f"  labels: accuracy {out['accuracy']:.4f}, expected calibration error "
            f"{out['ece']:.4f}, nll {out['label_nll_nats']:.4f} nats"
        )
    for key in ("fd", "precision", "recall", "accuracy"):
        if key == "accuracy" and "ece" in out:
            continue
        if key in out:
            print(f"  {key} {out[key]:.4f}")
    if "modes_covered" in out:
        print(
            f"  modes covered {out['modes_covered']} / {out['modes_total']}, high-quality "
            f"samples {out['high_quality']:.1%} (exact samples: {out['high_quality_expected']:.1%})"
        )
    if "classes" in out:
        c = out["classes"]
        missing = f" (missing: {', '.join(c['missing'])})" if c.get("missing") else ""
        print(f"  classes covered {c['classes_covered']} / {c['classes_total']}{missing}")
    if "validity" in out:
        uniq = ", ".join(
            f"{k} {out[k]:.4f}" for k in out if k.startswith("unique@") and out[k] is not None
        )
        print(
            f"  molecules ({out['generated']} samples): validity {out['validity']:.4f}, {uniq}, "
            f"novelty {_num(out.get('novelty'))}"
        )
        print(
            "  vs test: "
            + ", ".join(
                f"{k} {_num(out.get(k))}"
                for k in ("snn", "frag", "scaf", "intdiv1", "intdiv2", "logp_w1", "qed_w1",
                          "sa_w1", "mw_w1")
            )
        )  # fmt: skip
        for note in out.get("molecule_notes", []):
            print(f"  note: {note}")
    if "reconstruction" in out:
        print(
            f"  reconstruction accuracy {out['reconstruction']:.4f} (posterior mean, greedy "
            f"decode, {out['reconstruction_n']} molecules)"
        )
    if "reconstruction_sampled" in out:
        print(
            f"  reconstruction accuracy {out['reconstruction_sampled']:.4f} (sampled: "
            f"{out['reconstruction_sampled_draws']} each, {out['reconstruction_sampled_n']} "
            "molecules, as Kusner et al. 2017 and Jin et al. 2018)"
        )
    if "swap_accuracy" in out:
        print(
            f"  speaker swap: {out['swap_accuracy']:.4f} of {out['swap_n']} converted test "
            f"utterances heard as the target speaker (real test takes: "
            f"{_num(out.get('real_speaker_accuracy'))}); label kept "
            f"{_num(out.get('swap_label_accuracy'))}"
        )
    if "real_accuracy" in out and "accuracy" in out:
        print(
            f"  (accuracy: the share of {out['generated']} conditional samples of "
            f"{out['sample_seconds']} s heard as the label asked for; the feature network on "
            f"the real test takes: {_num(out['real_accuracy'])})"
        )
    if "features" in out:
        print(f"  features: {out['features']}")
