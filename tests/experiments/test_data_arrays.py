"""data=arrays: .npy, .npz, .pt files and folders of them, any channel count, labels and masks, never unpickled."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.builders import check_builder
from experiments.data import build_data
from experiments.data.arrays import load_arrays
from experiments.data.spec import DataSpec
from tests.conftest import make_cfg


def arrays(path: Path, size: object, channels: int, *overrides: str) -> DataSpec:
    """data=arrays at `path` built through its config."""
    return build_data(make_cfg("data=arrays", f"data.path={path}", *overrides).data, size, channels)


def one_line_error(path: Path, size: object, channels: int, *overrides: str, kind: type = ValueError) -> str:
    """The message of the one-line `kind` error loading `path`."""
    with pytest.raises(kind) as err:
        arrays(path, size, channels, *overrides)
    assert "\n" not in str(err.value) and type(err.value) is kind
    return str(err.value)


def batch(n: int, c: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 images in [0, 1]."""
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def test_npy_with_four_channels_round_trips(tmp_path: Path) -> None:
    images = batch(5, 4, 16, 24)
    np.save(tmp_path / "x.npy", images)
    data = arrays(tmp_path / "x.npy", (16, 24), 4)
    assert data.name == "arrays" and data.masks is None and data.labels.tolist() == [-1] * 5
    assert torch.equal(data.images, torch.from_numpy(images))  # already the model's size: as they are, in order


def test_npz_with_labels_and_masks_round_trips(tmp_path: Path) -> None:
    images, labels = batch(6, 1, 28, 28), np.array([3, 1, 4, 1, 5, 9], dtype=np.int32)
    masks = images[:, 0] > 0.5
    np.savez(tmp_path / "x.npz", images=images, labels=labels, masks=masks)
    data = arrays(tmp_path / "x.npz", 28, 1)
    assert torch.equal(data.images, torch.from_numpy(images)) and data.labels.tolist() == labels.tolist()
    assert data.labels.dtype == torch.int64 and torch.equal(data.masks, torch.from_numpy(masks))


def test_npz_with_one_unnamed_array_is_its_images(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", batch(2, 3, 8, 8))
    assert arrays(tmp_path / "x.npz", 8, 3).images.shape == (2, 3, 8, 8)


def test_pt_tensor_and_dict(tmp_path: Path) -> None:
    images = torch.from_numpy(batch(3, 4, 12, 12))
    torch.save(images, tmp_path / "t.pt")
    torch.save({"images": images, "labels": torch.tensor([0, 2, 1]), "masks": images[:, 1] > 0.3}, tmp_path / "d.pt")
    assert torch.equal(arrays(tmp_path / "t.pt", 12, 4).images, images)
    data = arrays(tmp_path / "d.pt", 12, 4)
    assert torch.equal(data.images, images) and data.labels.tolist() == [0, 2, 1]
    assert torch.equal(data.masks, images[:, 1] > 0.3)


def test_uint8_is_divided_by_255(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.arange(64, dtype=np.uint8).reshape(1, 1, 8, 8) * 4)
    assert torch.allclose(arrays(tmp_path / "x.npy", 8, 1).images.flatten(), torch.arange(64) * 4 / 255)


def test_folder_concatenates_its_files_in_name_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """b.npy (one [C, H, W] image, 8 px), a.npz (two images with labels and masks), c.npy (a batch of two)."""
    a, b, c = batch(2, 1, 16, 16, 1), batch(1, 1, 8, 8, 2)[0], batch(2, 1, 16, 16, 3)
    np.savez(tmp_path / "a.npz", images=a, labels=np.array([7, 8]), masks=a[:, 0] > 0.5)
    np.save(tmp_path / "b.npy", b)
    np.save(tmp_path / "c.npy", c)
    (tmp_path / "notes.txt").write_text("not an array")
    with caplog.at_level(logging.WARNING, logger="experiments.data.arrays"):
        data = arrays(tmp_path, 16, 1)
    assert data.images.shape == (5, 1, 16, 16) and data.labels.tolist() == [7, 8, -1, -1, -1]
    assert torch.equal(data.images[:2], torch.from_numpy(a)) and torch.equal(data.images[3:], torch.from_numpy(c))
    assert torch.equal(data.masks[:2], torch.from_numpy(a[:, 0] > 0.5)) and not data.masks[2:].any()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and " 3 of 5 images come from files without masks" in warnings[0]


def test_other_sizes_are_resized_and_their_masks_with_them(tmp_path: Path) -> None:
    """A 16 x 16 image, white (and masked) in its left half, at (32, 48): still the left half, exactly."""
    images = np.zeros((1, 2, 16, 16), dtype=np.float32)
    images[..., :8] = 1
    np.savez(tmp_path / "x.npz", images=images, masks=images[:, 0] > 0)
    data = arrays(tmp_path / "x.npz", (32, 48), 2)
    expected = torch.zeros(32, 48, dtype=torch.bool)
    expected[:, :24] = True
    assert data.images.shape == (1, 2, 32, 48) and torch.equal(data.masks[0], expected)
    assert torch.equal(data.images[0, 0] > 0.5, expected) and data.images.min() >= 0 and data.images.max() <= 1


def test_n_caps_with_a_seeded_draw_in_file_order(tmp_path: Path) -> None:
    images = np.arange(20, dtype=np.float32).reshape(20, 1, 1, 1).repeat(4, 2).repeat(4, 3) / 100
    np.save(tmp_path / "x.npy", images)

    def drawn(seed: int) -> list[int]:
        data = arrays(tmp_path / "x.npy", 4, 1, "data.n=6", f"data.seed={seed}")
        return [round(float(v) * 100) for v in data.images[:, 0, 0, 0]]

    first = drawn(1)
    assert len(set(first)) == 6 and first == sorted(first) and drawn(1) == first and drawn(2) != first


def test_wrong_channel_count_is_one_line_naming_both(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", batch(2, 4, 8, 8))
    assert one_line_error(tmp_path / "x.npy", 8, 3) == (f"data.path={str(tmp_path / 'x.npy')!r} holds 4-channel images "
                                                        f"(shape [2, 4, 8, 8]); the model takes 3 channels")
    np.save(tmp_path / "x.npy", batch(2, 8, 8, 3))  # channels last
    assert one_line_error(tmp_path / "x.npy", 8, 3).endswith("the model takes 3 channels (channels-last? arrays are "
                                                             "[N, C, H, W]: transpose them)")


def test_values_outside_0_1_are_one_line_naming_the_range(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", batch(2, 1, 8, 8) * 2 - 0.5)
    msg = one_line_error(tmp_path / "x.npy", 8, 1)
    assert msg.startswith(f"data.path={str(tmp_path / 'x.npy')!r}: float32 values in [-0.49") and \
        msg.endswith("]; images are float in [0, 1] or uint8: give data.value_range=[lo, hi] to map lo..hi to 0..1")
    np.save(tmp_path / "u.npy", np.full((1, 1, 4, 4), 4095, dtype=np.uint16))
    assert ": uint16 values in [4095, 4095]; " in one_line_error(tmp_path / "u.npy", 4, 1)
    assert torch.allclose(arrays(tmp_path / "u.npy", 4, 1, "data.value_range=[0,4095]").images, torch.ones(1, 1, 4, 4))


def test_value_range_maps_linearly_and_refuses_values_outside(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.array([-1.0, 0.0, 1.0], dtype=np.float32).reshape(1, 1, 1, 3))
    data = arrays(tmp_path / "x.npy", (1, 3), 1, "data.value_range=[-1,1]")
    assert data.images.flatten().tolist() == [0.0, 0.5, 1.0]
    assert one_line_error(tmp_path / "x.npy", (1, 3), 1, "data.value_range=[0,1]").endswith(
        ": values in [-1, 1] fall outside data.value_range=[0, 1]")
    assert one_line_error(tmp_path / "x.npy", (1, 3), 1, "data.value_range=[1,0]") == (
        "data.value_range=[1.0, 0.0] must be [lo, hi] with lo < hi")


class Payload:
    """A Python object: only unpickling can rebuild it."""


@pytest.mark.parametrize("name", ["object.npy", "pickle.npy", "object.npz", "object.pt"])
def test_pickled_objects_are_refused_in_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "object.npy":
        np.save(path, np.array([Payload()], dtype=object), allow_pickle=True)
    elif name == "pickle.npy":
        path.write_bytes(pickle.dumps({"images": Payload()}))
    elif name == "object.npz":
        np.savez(path, images=np.array([Payload()], dtype=object))
    else:
        torch.save({"images": torch.zeros(1, 1, 4, 4), "extra": Payload()}, path)
    named = f" ({__name__}.Payload)" if name == "object.pt" else ""
    assert one_line_error(path, 4, 1) == (f"data.path={str(path)!r} is refused: it holds pickled Python objects{named}, "
                                          f"and data files are never unpickled (save plain arrays with np.save/np.savez, "
                                          f"or tensors with torch.save)")


def test_bad_contents_are_one_line_each(tmp_path: Path) -> None:
    np.savez(tmp_path / "k.npz", images=batch(2, 1, 4, 4), mask=np.zeros((2, 4, 4)))
    assert one_line_error(tmp_path / "k.npz", 4, 1) == (f"unknown key in data.path={str(tmp_path / 'k.npz')!r}: 'mask'; "
                                                        f"did you mean masks? valid: images, labels, masks")
    np.savez(tmp_path / "l.npz", images=batch(2, 1, 4, 4), labels=np.array([1, 2, 3]))
    assert one_line_error(tmp_path / "l.npz", 4, 1).endswith("labels of shape [3] for 2 images; need [2]")
    np.savez(tmp_path / "f.npz", images=batch(2, 1, 4, 4), labels=np.array([1.0, 2.0]))
    assert one_line_error(tmp_path / "f.npz", 4, 1).endswith("labels are float64, not integers")
    np.savez(tmp_path / "m.npz", images=batch(2, 1, 4, 4), masks=np.zeros((2, 4, 5)))
    assert one_line_error(tmp_path / "m.npz", 4, 1).endswith("masks of shape [2, 4, 5] for images of shape "
                                                             "[2, 1, 4, 4]; need [2, 4, 4]")
    np.save(tmp_path / "d.npy", np.zeros((4, 4), dtype=np.float32))
    assert one_line_error(tmp_path / "d.npy", 4, 1).endswith("images are [C, H, W] or [N, C, H, W], got shape [4, 4]")
    np.save(tmp_path / "n.npy", np.full((1, 1, 2, 2), np.nan, dtype=np.float32))
    assert one_line_error(tmp_path / "n.npy", 2, 1).endswith("images hold NaN or infinite values")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    assert one_line_error(tmp_path / "junk.pt", 4, 1) == (
        f"data.path={str(tmp_path / 'junk.pt')!r} cannot be read: corrupt, or not written by np.save/np.savez/torch.save "
        f"(the weights-only unpickler stops at Unsupported operand 110)")
    (tmp_path / "empty.npz").write_bytes(b"")
    assert one_line_error(tmp_path / "empty.npz", 4, 1) == (f"data.path={str(tmp_path / 'empty.npz')!r} cannot be read "
                                                            f"(EOFError: No data left in file)")


def test_missing_and_wrong_paths_are_one_line(tmp_path: Path) -> None:
    assert one_line_error(tmp_path / "nope.npy", 4, 1, kind=FileNotFoundError) == (
        f"data.path={str(tmp_path / 'nope.npy')!r} does not exist")
    (tmp_path / "x.csv").write_text("1,2")
    assert one_line_error(tmp_path / "x.csv", 4, 1) == (f"data.path={str(tmp_path / 'x.csv')!r} is not a .npy, .npz, "
                                                        f".pt file, nor a folder of them")
    (tmp_path / "empty").mkdir()
    assert one_line_error(tmp_path / "empty", 4, 1, kind=FileNotFoundError) == (
        f"data.path={str(tmp_path / 'empty')!r} is a folder without .npy, .npz, .pt files")


def test_the_config_check_needs_a_path_and_reads_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^data=arrays needs data.path=<a .npy, .npz or .pt file, or a folder of them>$"):
        check_builder("data", make_cfg("data=arrays").data, "name")
    check_builder("data", make_cfg("data=arrays", f"data.path={tmp_path / 'elsewhere.npy'}").data, "name")
    with pytest.raises(ValueError, match=r"^data.value_range=\[2.0\] must be \[lo, hi\] with lo < hi$"):
        check_builder("data", make_cfg("data=arrays", "data.path=x.npy", "data.value_range=[2]").data, "name")
    with pytest.raises(ValueError, match=r"^data=arrays needs data.path="):
        load_arrays(None, 8)
