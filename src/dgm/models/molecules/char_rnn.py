"""CharRNN, the LSTM baseline of the MOSES benchmark (Polykovskiy et al. 2020, "Molecular sets
(MOSES)"; Segler et al. 2018): a language model over SMILES (or SELFIES) tokens, p(x) =
prod_t p(x_t | x_<t), exact. The text family's ``lstm-lm`` with MOSES's sizes: 3 LSTM layers
of 768 units, dropout 0.2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dgm.config import opt
from dgm.data.base import DataSpec
from dgm.models.molecules.base import check_molecules
from dgm.models.text.lstm_lm import LSTMLM, LSTMLMConfig
from dgm.registry import register


@dataclass
class CharRNNConfig(LSTMLMConfig):
    embed: int = opt(64, "width of the token embeddings (MOSES feeds one-hot tokens)")
    hidden: int = opt(768, "units of each LSTM layer (MOSES: 768)")
    layers: int = opt(3, "stacked LSTM layers (MOSES: 3)")
    dropout: float = opt(0.2, "dropout between LSTM layers and before the output (MOSES: 0.2)")


@register("char-rnn", "molecules", "LSTM over SMILES/SELFIES tokens (the MOSES CharRNN baseline)")
class CharRNN(LSTMLM):
    """:class:`~dgm.models.text.lstm_lm.LSTMLM` on molecules, MOSES's configuration."""

    Config = CharRNNConfig
    config: CharRNNConfig
    molecules = True
    # tests/test_precision.py proves bf16 on English text, which char-rnn refuses: float32
    bf16_proven = False
    train_defaults: ClassVar[dict] = {"lr": 1e-3, "batch_size": 64}

    @classmethod
    def check_spec(cls, spec: DataSpec) -> None:
        check_molecules(cls.name, spec)
        super().check_spec(spec)


__all__ = ["CharRNN", "CharRNNConfig"]
