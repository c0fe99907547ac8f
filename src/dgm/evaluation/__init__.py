"""Evaluation that reads models through the contract only: likelihoods (exact, importance-
sampled, AIS for GAN generators) and sample quality on dgm's own feature networks."""

from dgm.evaluation.ais import AISResult, ais, ais_log_prob, pick_sigma, reverse_ais
from dgm.evaluation.features import (
    FeatureNet,
    feature_net_for,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from dgm.evaluation.likelihood import (
    bits_per_dim,
    evaluate_elbo,
    evaluate_nll,
    per_example,
    per_example_nll,
    summarize_nll,
)
from dgm.evaluation.quality import (
    classifier_accuracy,
    feature_stats,
    frechet_distance,
    frechet_distance_from_features,
    mode_coverage,
    modes_by_classifier,
    precision_recall,
    sample_quality,
)
from dgm.evaluation.sample_quality import evaluate_sample_quality

__all__ = [
    "AISResult",
    "FeatureNet",
    "ais",
    "ais_log_prob",
    "bits_per_dim",
    "classifier_accuracy",
    "evaluate_elbo",
    "evaluate_nll",
    "evaluate_sample_quality",
    "feature_net_for",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_features",
    "load_feature_net",
    "mode_coverage",
    "modes_by_classifier",
    "per_example",
    "per_example_nll",
    "pick_sigma",
    "precision_recall",
    "reverse_ais",
    "sample_quality",
    "save_feature_net",
    "summarize_nll",
    "train_feature_net",
]
