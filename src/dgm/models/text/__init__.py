"""Models of text: sentences as rows of token ids with an end token, whose probabilities over
all sentences up to the maximum length sum to 1 (:mod:`dgm.models.text.base`).

- ``lstm-lm``: the LSTM language model, the text-VAE papers' baseline;
- ``transformer-lm``: a causal transformer over tokens with a key/value cache;
- ``text-vae``: the sentence VAE (Bowman et al. 2016) with an LSTM or dilated-CNN decoder (Yang
  et al. 2017), KL annealing, word dropout, free bits and aggressive encoder updates (He et
  al. 2019).
"""

from dgm.models.text.base import TextBase, TextConfig
from dgm.models.text.lstm_lm import LSTMLM, LSTMLMConfig
from dgm.models.text.text_vae import TextVAE, TextVAEConfig
from dgm.models.text.transformer_lm import TransformerLM, TransformerLMConfig

__all__ = [
    "LSTMLM",
    "LSTMLMConfig",
    "TextBase",
    "TextConfig",
    "TextVAE",
    "TextVAEConfig",
    "TransformerLM",
    "TransformerLMConfig",
]
