"""fast_forward computes what truncate computes (outputs and input gradients), faster, without touching the model."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from methods.base import Normalize, truncate
from methods.graph import fast_forward

NORM = Normalize([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])


def resnet18() -> nn.Module:
    """resnet18 at random init with non-trivial BatchNorm statistics (fresh ones are the identity)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def output_and_grad(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The net's output and the gradient of its mean square with respect to the input."""
    x = x.clone().requires_grad_(True)
    out = net(x)
    (grad,) = torch.autograd.grad(out.pow(2).mean(), x)
    return out.detach(), grad


@pytest.mark.parametrize("layer", ["", "layer2", "layer1.0.relu", "layer3.1.bn2"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_outputs_and_input_gradients_as_truncate(layer, channels_last):
    net = resnet18()
    x = torch.rand(2, 3, 64, 64)
    ref_out, ref_grad = output_and_grad(truncate(net, layer, NORM), x)
    out, grad = output_and_grad(fast_forward(net, layer, NORM, channels_last), x)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-6)


def test_container_layer_of_googlenet_is_cut_at_its_output():
    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    x = torch.rand(2, 3, 64, 64)
    fast = fast_forward(net, "inception4a", NORM, channels_last=True)
    assert fast.traced and not hasattr(fast.body, "inception4b")  # nothing above the layer is kept
    torch.testing.assert_close(fast(x), truncate(net, "inception4a", NORM)(x), rtol=1e-4, atol=1e-4)


def test_batchnorm_is_folded_in_eval_mode_and_kept_in_train_mode():
    net = resnet18()
    bns = lambda m: sum(isinstance(s, nn.BatchNorm2d) for s in m.modules())
    assert bns(fast_forward(net, "layer2")) == 0
    below = sum(isinstance(m, nn.BatchNorm2d) for n, m in net.named_modules() if n.split(".")[0] in ("bn1", "layer1", "layer2"))
    assert bns(fast_forward(net.train(), "layer2")) == below > 0


def test_the_model_is_left_as_it_was():
    net = resnet18()
    before = copy.deepcopy(net.state_dict())
    fast_forward(net, "layer3", NORM, channels_last=True)(torch.rand(1, 3, 32, 32))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.conv1.weight.is_contiguous() and not net.training
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


class Caching(nn.Module):
    """Keeps a value per device in a dict and its last input as attributes, as timm's LeViT caches attention biases."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(4, 2, 1)
        self.cache: dict[str, torch.Tensor] = {}
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if str(x.device) not in self.cache:
            self.cache[str(x.device)] = self.conv.bias * 2
        self.seen.append(1)
        self.last = x
        return self.head(self.conv(x) + self.cache[str(x.device)][None, :, None, None])


def test_tracing_leaves_no_proxy_on_a_model_that_caches_in_forward():
    torch.manual_seed(0)
    net = Caching().eval()
    x = torch.rand(2, 3, 12, 12)
    fast = fast_forward(net, "head")
    assert net.cache == {} and net.seen == [] and not hasattr(net, "last")  # as before the trace
    copied = fast_forward(copy.deepcopy(net), "head")  # the model still copies
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-6) and torch.allclose(copied(x), net(x), atol=1e-6)


class Branchy(nn.Module):
    """Data-dependent control flow between conv and bn: torch.fx can trace up to conv, not past it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y if y.sum() > 0 else -y)


def test_untraceable_model_falls_back_to_hook_truncation_and_is_traced_below_the_branch():
    torch.manual_seed(0)
    net = Branchy().eval()
    x = torch.rand(2, 3, 16, 16)
    fast = fast_forward(net, "bn", channels_last=True)
    assert not fast.traced
    torch.testing.assert_close(fast(x), truncate(net, "bn")(x))
    torch.testing.assert_close(fast_forward(net, "")(x), net(x))
    below = fast_forward(net, "conv")  # the trace stops at the layer, before the branch
    assert below.traced
    torch.testing.assert_close(below(x), truncate(net, "conv")(x))


def test_forward_hooks_are_kept_by_falling_back_to_the_hook_truncation():
    net = resnet18()
    net.layer1.register_forward_hook(lambda _m, _i, out: out * 0)  # e.g. a user's ablation hook
    fast = fast_forward(net, "layer2", NORM)
    x = torch.rand(1, 3, 32, 32)
    assert not fast.traced
    torch.testing.assert_close(fast(x), truncate(net, "layer2", NORM)(x))


def test_a_model_holding_a_cached_non_leaf_tensor_still_copies():
    from experiments.metrics.sanity import randomize

    torch.manual_seed(0)
    net = Caching().eval()
    x = torch.rand(2, 3, 12, 12)
    net(x)  # with autograd on: the cache now holds a tensor with history, which copy.deepcopy refuses
    assert net.cache["cpu"].grad_fn is not None
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(net)
    with torch.no_grad():
        assert torch.allclose(fast_forward(net, "head")(x), net(x), atol=1e-6)
        assert torch.allclose(fast_forward(net, "head", NORM)(x), net(NORM(x)), atol=1e-6)
    assert not torch.equal(randomize(net, "head", "independent").head.weight, net.head.weight)


class Constants(nn.Module):
    """Makes a tensor in forward (fx stores it as a constant) and holds a 5-D buffer (timm's Swin has one)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)
        self.register_buffer("table", torch.ones(1, 1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x) * torch.arange(1.0, 5.0).view(1, 4, 1, 1) * self.table[0])


def test_trace_constants_stay_off_the_model_and_5d_buffers_stay_as_they_are():
    from methods.receptive_field import receptive_field

    torch.manual_seed(0)
    net = Constants().eval()
    x = torch.rand(2, 3, 12, 12)
    fast = fast_forward(net, "head", channels_last=True)
    assert not [k for k in vars(net) if k.startswith("_tensor_constant")]
    with torch.no_grad():
        assert torch.allclose(fast(x), net(x), atol=1e-5)
    assert receptive_field(net, "head", 12).size == 3
