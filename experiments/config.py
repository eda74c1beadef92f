"""Config schema: typed dataclasses registered with Hydra, so a misspelled key or a wrong type fails at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


@dataclass
class TargetConf:
    """What to visualize; empty layer = the model config's default targets."""

    layer: Optional[str] = None
    units: Any = None  # a list of indices, or an int n = the first n units
    kind: str = "channel"
    position: Optional[List[int]] = None
    direction: Optional[List[float]] = None


@dataclass
class ModelConf:
    """Where the model comes from and how it is fed; `_target_` unset = conf/model/<source>.yaml's builder."""

    _target_: Optional[str] = None  # import path of the builder, called with the fields its parameters name
    source: str = "planted"
    name: Optional[str] = None
    weights: Optional[str] = None
    factory: Optional[str] = None
    checkpoint: Optional[str] = None
    strict: bool = True  # false: load the checkpoint's tensors that fit, listing the others in one log line
    input_size: Any = 224  # a square side, or [height, width]
    in_channels: Optional[int] = None  # None: the model's first Conv2d's
    mean: List[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # one value per input channel
    std: List[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    num_classes: Optional[int] = None  # None: the output's size (dim 1)
    output: Any = None  # the index or key of the tensor to use where the model returns a tuple, list or dict
    targets: Dict[str, Any] = field(default_factory=dict)  # layer -> units (list, or n = the first n); set: the targets
    default_targets: Any = None  # {layer: units}: an option's own (conf/model/*.yaml), used where targets is unset


@dataclass
class MethodConf:
    """A method, its preset name and the keyword arguments its `visualize` takes."""

    name: str = "raw_weights"
    preset: str = "default"
    params: Dict[str, Any] = field(default_factory=dict)
    n_images: int = 2  # occlusion: how many of the target's top-activating images to occlude
    images: Optional[List[int]] = None  # occlusion: these data images (indices) for every unit instead


@dataclass
class DataConf:
    """A data source; `_target_` unset = conf/data/<name>.yaml's builder."""

    _target_: Optional[str] = None  # import path of the builder, called with the fields its parameters name and size
    name: str = "shapes"
    n: Any = 512  # images: a count, or all (image_folder, arrays: every image; experiments/data/count.py)
    seed: int = 1234
    root: Optional[str] = None  # image_folder: the ImageFolder tree
    resize: str = "pad"  # image_folder: pad | crop | stretch to the model's (h, w) (experiments/data/fit.py)
    boxes: Optional[str] = None  # image_folder: a CSV path,top,left,bottom,right of object boxes (image_folder.py)
    path: Optional[str] = None  # arrays: a .npy/.npz/.pt file or a folder of them (experiments/data/arrays.py)
    value_range: Optional[List[float]] = None  # arrays: [lo, hi] mapped to [0, 1] (unset: float in [0, 1] or uint8)
    stream: Any = "auto"  # image_folder, arrays: read images as needed (true), up front (false); auto: n=all or > 4096
    workers: Any = "auto"  # image_folder, arrays: DataLoader processes decoding a streamed source; auto: min(4, CPUs)
    shard: Optional[int] = None  # this job's part of the source, 0..num_shards-1 (experiments.data.shard)
    num_shards: int = 1  # parts the source is split into (contiguous blocks); merge them with experiments.merge


@dataclass
class MetricsConf:
    """Which quality metrics a run computes, and the run-wide settings they share (conf/metrics/)."""

    enabled: List[str] = field(default_factory=lambda: ["all"])
    randomization: bool = True  # the model randomization test (re-runs the method on a randomized model)
    reruns: bool = True  # seed_ssim and mis_proxy, which re-run the method (another seed, minimize); metrics=fast: off
    randomization_mode: str = "cascading"  # cascading | independent
    randomization_curve: bool = False  # Adebayo et al. 2018 Fig. 2: cascade_* rows, one re-run per cascade step
    cascade_layers: List[str] = field(default_factory=list)  # the curve's steps (empty: the model's target layers)
    mis_tasks: int = 20
    mis_references: int = 9  # K max and K min references per unit (MIS's K), at most what the method gives
    mis_embedding: str = "hog_colour"  # hog_colour, or module:function (images [N, 3, H, W] in [0, 1] -> [N, D])
    mis_temperature: Optional[float] = None  # the sigmoid's; None: the embedding's calibrated value (hog_colour)
    auc_steps: int = 50


@dataclass
class SpeedConf:
    """The speed experiment: what to time and how often."""

    repeats: int = 3
    warmup: int = 1
    budget_s: float = 50.0  # timed repeats per contender: as many as fit in this at its warm-up speed (1..repeats)
    peers: bool = True  # also time the peers (lucent, captum) where installed
    memory: bool = True  # peak memory (on CPU: one extra untimed call per contender, sampled)
    scale: float = 1.0  # multiplies each case's work (gradient-ascent steps, images); < 1 for smoke runs
    threads: Optional[int] = None  # torch.set_num_threads before timing (None: torch's default)
    only: List[str] = field(default_factory=list)  # case names to run (empty: all)
    cases: List[Dict[str, Any]] = field(default_factory=list)  # see experiments/speed.py Case


@dataclass
class VizbenchConf:
    """The whole run config."""

    experiment: str = "single"
    runner: str = "experiments.run.quality_run"  # the function that runs the experiment (speed: experiments.speed.run_speed)
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = True  # NHWC weights and inputs: faster on CPU (oneDNN) and on CUDA (cuDNN, with amp)
    compile: bool = False
    progress: bool = True
    resume: bool = False
    output_dir: Optional[str] = None  # write the run here instead of Hydra's output dir (tests, embedding)
    target: TargetConf = field(default_factory=TargetConf)
    model: ModelConf = field(default_factory=ModelConf)
    method: MethodConf = field(default_factory=MethodConf)
    data: DataConf = field(default_factory=DataConf)
    metrics: MetricsConf = field(default_factory=MetricsConf)
    speed: SpeedConf = field(default_factory=SpeedConf)


def register() -> None:
    """Register the schema as `vizbench_schema` (the first entry of conf/config.yaml's defaults).

    `method.params` is left open, so a misspelled param reaches the method's own check (one line naming the
    valid ones) instead of Hydra's "not in struct" error: each method's schema is the one that knows its keys.
    `model.targets` is open too: its keys are layer names, checked against the model once it is built.
    """
    schema = OmegaConf.structured(VizbenchConf)
    OmegaConf.set_struct(schema.method.params, False)
    OmegaConf.set_struct(schema.model.targets, False)  # layer names are the model's: checked against it
    ConfigStore.instance().store(name="vizbench_schema", node=schema)
