"""Activation functions by name, so configs can choose them (``--set activation=gelu``)."""

from __future__ import annotations

from typing import Literal

from torch import nn

Activation = Literal["leaky_relu", "relu", "gelu", "elu", "tanh"]


def activation(name: str) -> nn.Module:
    return {
        "leaky_relu": nn.LeakyReLU,
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "elu": nn.ELU,
        "tanh": nn.Tanh,
    }[name]()
