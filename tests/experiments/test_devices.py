"""Tests for experiments.devices: device names, labels, autocast, model preparation, run context."""

import pytest
import torch
from torch import nn

from experiments.devices import autocast, device_label, prepare_input, prepare_model, resolve_device, run_context


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend two CUDA devices exist (only the query functions; nothing is allocated on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"Fake GPU {index}")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_resolve_cpu_and_auto_without_cuda(no_cuda):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


def test_resolve_with_cuda(fake_cuda):
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", "CPU", ""])
def test_resolve_unknown_name_is_one_line_naming_valid_values(name):
    with pytest.raises(ValueError) as info:
        resolve_device(name)
    message = str(info.value)
    assert "\n" not in message
    assert repr(name) in message and "auto, cpu, cuda, cuda:N" in message


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_cuda_unavailable_is_one_line(no_cuda, name):
    with pytest.raises(ValueError, match="CUDA is not available") as info:
        resolve_device(name)
    assert "\n" not in str(info.value)


def test_resolve_missing_cuda_index(fake_cuda):
    with pytest.raises(ValueError, match=r"'cuda:2' does not exist; .* 2 CUDA device\(s\): cuda:0..cuda:1$"):
        resolve_device("cuda:2")


def test_device_label(fake_cuda):
    assert device_label(torch.device("cpu")) == "cpu"
    assert device_label(torch.device("cuda", 1)) == "cuda:1 Fake GPU 1"
    assert device_label(torch.device("cuda")) == "cuda:0 Fake GPU 0"


def test_autocast_bf16_on_cpu_gives_bf16_matmul():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "off"):
        assert (a @ b).dtype == torch.float32


def test_autocast_cuda_uses_cuda_device_type():
    with pytest.warns(UserWarning):  # no CUDA here: torch builds the context but disables it
        ctx = autocast(torch.device("cuda", 0), "fp16")
    assert isinstance(ctx, torch.autocast)
    assert (ctx.device, ctx.fast_dtype) == ("cuda", torch.float16)


def test_autocast_errors():
    with pytest.raises(ValueError, match="use amp=bf16"):
        autocast(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match=r"'fp32'; valid: off, bf16, fp16$"):
        autocast(torch.device("cpu"), "fp32")


def _tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_prepare_model_channels_last_without_compile(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda m: pytest.fail("compile was not asked for"))
    model = prepare_model(_tiny_cnn(), torch.device("cpu"), channels_last=True, compile=False)
    weight = model[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    x = prepare_input(torch.rand(2, 3, 8, 8), torch.device("cpu"), channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert model(x).shape == (2, 2, 6, 6)


def test_prepare_model_plain_keeps_layout():
    model = prepare_model(_tiny_cnn(), torch.device("cpu"), channels_last=False, compile=False)
    assert model[0].weight.is_contiguous()


def test_prepare_model_compile_wraps_the_moved_model(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m: compiled.append(m) or ("compiled", m))
    base = _tiny_cnn()
    result = prepare_model(base, torch.device("cpu"), channels_last=True, compile=True)
    assert result == ("compiled", base)
    assert compiled[0][0].weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
def test_prepare_model_real_compile_matches_eager():
    model = _tiny_cnn().eval()
    x = torch.rand(2, 3, 8, 8)
    compiled = prepare_model(model, torch.device("cpu"), channels_last=False, compile=True)
    torch.testing.assert_close(compiled(x), model(x))


def test_run_context_cpu():
    context = run_context(torch.device("cpu"), "bf16", channels_last=True, compile=False, batch_size=16)
    assert context == {
        "device": "cpu", "torch_version": torch.__version__, "cuda_version": None, "amp": "bf16",
        "channels_last": True, "compile": False, "threads": torch.get_num_threads(), "batch_size": 16,
    }


def test_run_context_cuda(fake_cuda):
    context = run_context(torch.device("cuda", 1), "off", channels_last=False, compile=True, batch_size=4)
    assert context["device"] == "cuda:1 Fake GPU 1"
    assert context["cuda_version"] == torch.version.cuda
