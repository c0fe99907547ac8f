"""Models of molecules as strings: SMILES or SELFIES token sequences (:mod:`dgm.data.molecules`).

- ``mol-vae``: the chemical VAE (Gomez-Bombarelli et al. 2018): a 1-D conv (or GRU) encoder, a
  GRU decoder fed z at every step, and a property head on z trained jointly;
- ``grammar-vae``: the grammar VAE (Kusner et al. 2017): SMILES as the production rules of
  their derivation, decoded under the grammar's stack masks so that every output parses;
- ``char-rnn``: the LSTM baseline of the MOSES benchmark (Polykovskiy et al. 2020), the text
  family's ``lstm-lm`` with MOSES's sizes;
- ``grammar.py``: a context-free grammar of SMILES (LL(1), one derivation per string), its
  parser and the stack masks of the grammar VAE (Kusner et al. 2017).

Every text model also models molecules: they are text whose tokens are SMILES tokens or
SELFIES symbols.
"""

from dgm.models.molecules.char_rnn import CharRNN, CharRNNConfig
from dgm.models.molecules.grammar_vae import GrammarVAE, GrammarVAEConfig
from dgm.models.molecules.mol_vae import MolVAE, MolVAEConfig

__all__ = [
    "CharRNN",
    "CharRNNConfig",
    "GrammarVAE",
    "GrammarVAEConfig",
    "MolVAE",
    "MolVAEConfig",
]
