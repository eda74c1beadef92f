"""ShapesCNN: a small BatchNorm CNN trained on the procedural shapes (see experiments/train.py), with its checkpoint."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from experiments.data.shapes import CLASSES
from experiments.zoo.checkpoint import load_into, read_state_dict
from experiments.zoo.spec import ModelSpec

CHECKPOINT = Path(__file__).parent / "checkpoints" / "shapes_cnn.pt"
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
TRAIN_HINT = "; train one with `python -m experiments.train`"


class ShapesCNN(nn.Module):
    """Three conv-BN-ReLU-maxpool blocks (width, 2x, 4x channels), global average pool, linear head."""

    def __init__(self, width: int = 16, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        chans = (3, width, 2 * width, 4 * width)
        for i in range(1, 4):
            self.add_module(f"conv{i}", nn.Conv2d(chans[i - 1], chans[i], 3, padding=1, bias=False))
            self.add_module(f"bn{i}", nn.BatchNorm2d(chans[i]))
            self.add_module(f"relu{i}", nn.ReLU())
            self.add_module(f"pool{i}", nn.MaxPool2d(2))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[3], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(1, 4):
            x = getattr(self, f"pool{i}")(getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))))
        return self.fc(self.gap(x).flatten(1))


def build_shapes_cnn(checkpoint: str | None = None) -> ModelSpec:
    """ShapesCNN with the weights in `checkpoint` (default: the committed one), in eval mode."""
    path = Path(checkpoint) if checkpoint else CHECKPOINT
    what = f"model.checkpoint {str(path)!r}" if checkpoint else f"the built-in shapes_cnn checkpoint {str(path)!r}"
    state = read_state_dict(str(path), what, TRAIN_HINT)
    width = state["conv1.weight"].shape[0] if "conv1.weight" in state else 16
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else len(CLASSES)
    model = load_into(ShapesCNN(width=width, num_classes=num_classes), state, what, TRAIN_HINT)
    units = [0, 1, 2, 3]
    return ModelSpec(
        name="shapes_cnn", model=model.eval(), weights="built-in" if checkpoint is None else str(path), input_size=64,
        mean=MEAN, std=STD, default_targets={"conv1": units, "conv2": units, "conv3": units},
        num_classes=model.fc.out_features,
    )
