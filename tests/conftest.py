"""Shared fixtures: composed configs and a tiny CNN."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from torch import nn

from experiments.config import register

register()


def make_cfg(*overrides: str) -> DictConfig:
    """The run config as Hydra composes it, with `overrides` (single-run mode)."""
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="config", overrides=["hydra.mode=RUN", *overrides], return_hydra_config=False)


class TinyCNN(nn.Module):
    """Two conv layers and a head: small enough for any test."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def small_net() -> nn.Module:
    """A seeded conv net (conv, pool, conv, global pool, linear; 5 classes): 'conv2' sees an 8 px field."""
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 6, 3, padding=1), relu1=nn.ReLU(), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(6, 8, 3, padding=1), relu2=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(),
        fc=nn.Linear(8, 5),
    )).eval()


def make_tiny_cnn() -> nn.Module:
    """A seeded TinyCNN (importable by path for custom-model tests)."""
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture
def tiny_cnn() -> nn.Module:
    """A seeded TinyCNN in eval mode."""
    return make_tiny_cnn()
