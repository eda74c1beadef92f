"""Results as labelled, legible PNGs: every tile upscaled by nearest neighbour to at least MIN_TILE px, a title strip
on top and a label under each tile; occlusion maps drawn over their photos with a colour bar that says the sign."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from experiments import tables
from experiments.data.spec import DataSpec
from methods.base import Visualization
from methods.gradient_ascent import Ascent
from methods.occlusion import OcclusionMaps
from methods.top_patches import TopPatches

MIN_TILE = 192  # px: the shorter side of every tile (each channel panel) after nearest-neighbour upscaling
TITLE_SIZE, LABEL_SIZE = 18, 14  # px: font sizes of the title strip and of the tile labels
MARGIN = 8  # px of white around and between tiles
TEXT_PAD = 5  # px of white above and below a line of text
OCCLUSION_CMAP = "RdBu_r"  # diverging: positive drops red, negative blue, 0 white
OCCLUSION_ALPHA = 0.85  # opacity of a map pixel at the unit's max |drop| (0 shows the photo alone)
SIGN_CAPTION = "red: hiding this patch lowers the unit · blue: raises it"
DPI = 100  # occlusion figures are laid out in pixels at this resolution
FLAG_COLOUR = (200, 0, 0)  # RGB of a flag's text under a tile and after a title


PANEL_GAP = 1  # pixels of white between the channel panels of one picture


def upscale(images: Tensor, min_side: int = MIN_TILE) -> Tensor:
    """Nearest-neighbour upsampling so small images (e.g. 7x7 filters) are legible: the shorter side to >= min_side."""
    factor = max(1, math.ceil(min_side / min(images.shape[-2:])))
    return F.interpolate(images, scale_factor=factor, mode="nearest") if factor > 1 else images


def picture(images: Tensor, rgb_channels: Sequence[int] | None = None) -> Tensor:
    """Images [K, C, H, W] as pictures: C = 1 grey and C = 3 RGB as they are; any other C one grey panel per
    channel, side by side from channel 0 on the left, PANEL_GAP white pixels apart: [K, 1, H, C*W + (C-1)*gap].
    rgb_channels=[i, j, k]: instead the RGB composite of channels i, j, k."""
    k, c, h, w = images.shape
    if rgb_channels is not None:
        if len(rgb_channels) != 3 or not all(0 <= i < c for i in rgb_channels):
            raise ValueError(f"rgb_channels={list(rgb_channels)} must be three channels [r, g, b] in 0..{c - 1}")
        return images[:, list(rgb_channels)]
    if c in (1, 3):
        return images
    padded = F.pad(images, (0, PANEL_GAP), value=1.0)
    return padded.permute(0, 2, 1, 3).reshape(k, 1, h, c * (w + PANEL_GAP))[..., : c * (w + PANEL_GAP) - PANEL_GAP]


def layer_name(layer: str) -> str:
    """A layer as pictures name it ('' is the model's output)."""
    return layer or "output"


def method_name(method: str, preset: str = "") -> str:
    """'<method>/<preset>', or the method alone without a preset."""
    return f"{method}/{preset}" if preset else method


def grid_title(method: str, preset: str, layer: str) -> str:
    """Title of a (method, layer) grid: '<method>/<preset> · <layer>'."""
    return f"{method_name(method, preset)} · {layer_name(layer)}"


def unit_title(method: str, preset: str, layer: str, unit: int) -> str:
    """Title of one unit's picture: '<layer> · unit <u> · <method>/<preset>'."""
    return f"{layer_name(layer)} · unit {unit} · {method_name(method, preset)}"


def tile_labels(unit: int, k: int) -> list[str]:
    """Labels of a unit's k tiles: 'unit <u>', or 'unit <u> · <j>' for k > 1."""
    return [f"unit {unit}"] if k == 1 else [f"unit {unit} · {j}" for j in range(k)]


def unit_flags(result: Visualization) -> dict[int, str]:
    """Each flagged unit's short note for its pictures (the flag statuses' reasons, e.g. 'objective ended below its
    start'), joined by '; ' where several of its values are flagged."""
    notes: dict[int, list[str]] = {}
    for by_unit in result.flags.values():
        for unit, status in by_unit.items():
            note = status.removeprefix("flagged:").split(" (")[0].strip()
            if note not in notes.setdefault(unit, []):
                notes[unit].append(note)
    return {unit: "; ".join(n) for unit, n in notes.items()}


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled default font at `size` px (Pillow >= 10.1), so no font file is needed."""
    return ImageFont.load_default(size=size)


def text_width(text: str, face: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    """Width in px of `text` drawn in `face`."""
    return math.ceil(face.getlength(text))


def to_pil(image: Tensor) -> Image.Image:
    """One picture [1 or 3, H, W] in [0, 1] as an 8-bit PIL image (grey 'L' or 'RGB'), rounded as save_image rounds."""
    arr = image.detach().float().cpu().mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


def tiles(images: Tensor, min_side: int = MIN_TILE, rgb_channels: Sequence[int] | None = None) -> list[Image.Image]:
    """Images [K, C, H, W] in [0, 1] as K tiles, upscaled by nearest neighbour so each picture (each channel panel,
    for C not in {1, 3}: `picture`) has its shorter side >= min_side."""
    if images.dim() != 4:
        raise ValueError(f"pictures need images [K, C, H, W], got shape {tuple(images.shape)}")
    shown = picture(upscale(images.detach().float().cpu().clamp(0, 1), min_side), rgb_channels)
    return [to_pil(x) for x in shown]


def sheet(pictures: Sequence[Image.Image], labels: Sequence[str], title: str, ncol: int,
          notes: Sequence[str] = (), title_note: str = "") -> Image.Image:
    """Pictures in rows of `ncol` on white, each centred in its cell over its label, under a title strip; `notes`
    (one per picture, '' for none) go in FLAG_COLOUR under the labels, `title_note` after the title."""
    if not pictures or len(pictures) != len(labels) or (notes and len(notes) != len(labels)):
        raise ValueError(f"a sheet needs one label (and note) per picture; got {len(pictures)} pictures, "
                         f"{len(labels)} labels, {len(notes)} notes")
    title_font, label_font = font(TITLE_SIZE), font(LABEL_SIZE)
    ncol = max(1, min(ncol, len(pictures)))
    nrow = math.ceil(len(pictures) / ncol)
    cell_w = max(max(p.width for p in pictures), max(text_width(t, label_font) for t in [*labels, *notes]))
    cell_h = max(p.height for p in pictures)
    line_h = LABEL_SIZE + 2 * TEXT_PAD
    title_h, label_h = TITLE_SIZE + 2 * TEXT_PAD, line_h * (2 if any(notes) else 1)
    title_note = f" · {title_note}" if title_note else ""
    title_w = text_width(title + title_note, title_font)
    width = max(MARGIN + ncol * (cell_w + MARGIN), title_w + 2 * MARGIN)
    height = title_h + nrow * (cell_h + label_h + MARGIN)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, TEXT_PAD), title, font=title_font, fill="black")
    if title_note:
        draw.text((MARGIN + text_width(title, title_font), TEXT_PAD), title_note, font=title_font, fill=FLAG_COLOUR)
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        row, col = divmod(i, ncol)
        left, top = MARGIN + col * (cell_w + MARGIN), title_h + row * (cell_h + label_h + MARGIN)
        canvas.paste(picture, (left + (cell_w - picture.width) // 2, top))
        draw.text((left + cell_w // 2, top + cell_h + TEXT_PAD), label, font=label_font, fill="black", anchor="ma")
        if notes and notes[i]:
            draw.text((left + cell_w // 2, top + cell_h + line_h + TEXT_PAD), notes[i], font=label_font,
                      fill=FLAG_COLOUR, anchor="ma")
    return canvas


def save_sheet(images: Tensor, path: str | Path, title: str, labels: Sequence[str], ncol: int,
               rgb_channels: Sequence[int] | None = None, notes: Sequence[str] = (), title_note: str = "") -> Path:
    """Save images [K, C, H, W] in [0, 1] as one labelled PNG (tiles, then sheet); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet(tiles(images, rgb_channels=rgb_channels), labels, title, ncol, notes, title_note).save(path)
    return path


@dataclass(frozen=True)
class OcclusionLayout:
    """Pixel layout of an occlusion figure: its size and each panel's (left, top, right, bottom) box, y down."""

    size: tuple[int, int]  # (width, height)
    panels: tuple[tuple[int, int, int, int], ...]
    colorbar: tuple[int, int, int, int]
    title_h: int
    label_h: int


OCC_GAP, OCC_BAR_GAP, OCC_BAR_W, OCC_BAR_TEXT = 14, 18, 16, 90  # px: between panels, bar offset, bar, bar ticks + label
OCC_TITLE_PT, OCC_LABEL_PT, OCC_CAPTION_PT = 13, 10, 11  # font sizes in points


def _text_px(text: str, points: float) -> int:
    """Width in px of `text` set in matplotlib's default font at `points`, at DPI."""
    width, _, _ = RendererAgg(1, 1, DPI).get_text_width_height_descent(text, FontProperties(size=points), ismath=False)
    return math.ceil(width)


def occlusion_layout(n: int, h: int, w: int, title: str = "", caption: str = SIGN_CAPTION, ncol: int = 4,
                     ) -> OcclusionLayout:
    """Where the n panels of h x w maps (each upscaled by a whole factor to >= MIN_TILE px), the colour bar, the
    title and the caption go."""
    factor = max(1, math.ceil(MIN_TILE / min(h, w)))
    pw, ph = w * factor, h * factor
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol)
    title_h, label_h, caption_h = 2 * OCC_TITLE_PT + 12, 2 * OCC_LABEL_PT + 8, 2 * OCC_CAPTION_PT + 14
    panels_w = ncol * pw + (ncol - 1) * OCC_GAP
    width = max(MARGIN + panels_w + OCC_BAR_GAP + OCC_BAR_W + OCC_BAR_TEXT,
                _text_px(title, OCC_TITLE_PT) + 2 * MARGIN, _text_px(caption, OCC_CAPTION_PT) + 2 * MARGIN)
    height = title_h + nrow * (ph + label_h) + (nrow - 1) * OCC_GAP + caption_h
    boxes = []
    for i in range(n):
        row, col = divmod(i, ncol)
        left, top = MARGIN + col * (pw + OCC_GAP), title_h + row * (ph + label_h + OCC_GAP)
        boxes.append((left, top, left + pw, top + ph))
    bar_left = MARGIN + panels_w + OCC_BAR_GAP
    bar = (bar_left, title_h, bar_left + OCC_BAR_W, title_h + nrow * (ph + label_h) + (nrow - 1) * OCC_GAP - label_h)
    return OcclusionLayout((width, height), tuple(boxes), bar, title_h, label_h)


def occlusion_figure(photos: Tensor, maps: Tensor, title: str, labels: Sequence[str], ncol: int = 4) -> Figure:
    """Maps [n, H, W] (raw score drops) over their grey photos [n, C, H, W] in RdBu_r centred at 0 (limits
    +-max |map| over all n), opacity OCCLUSION_ALPHA * |map| / max, with one colour bar and the sign caption."""
    if photos.shape[0] != maps.shape[0] or photos.shape[-2:] != maps.shape[-2:] or maps.dim() != 3:
        raise ValueError(f"occlusion pictures need photos [n, C, H, W] and maps [n, H, W] of the same n, H, W; "
                         f"got {tuple(photos.shape)} and {tuple(maps.shape)}")
    maps, grey = maps.detach().float().cpu(), photos.detach().float().cpu().clamp(0, 1).mean(1)
    finite = maps[torch.isfinite(maps)].abs()  # NaN drops (a NaN score) are drawn as the photo alone
    limit = max(float(finite.max()), 1e-12) if finite.numel() else 1.0
    layout = occlusion_layout(len(maps), *maps.shape[-2:], title=title, ncol=ncol)
    width, height = layout.size
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)

    def axes(box: tuple[int, int, int, int]) -> Axes:
        """Axes over a (left, top, right, bottom) pixel box."""
        left, top, right, bottom = box
        return fig.add_axes((left / width, 1 - bottom / height, (right - left) / width, (bottom - top) / height))

    norm = Normalize(-limit, limit)
    for box, photo, drop, label in zip(layout.panels, grey, maps, labels):
        ax = axes(box)
        ax.imshow(photo.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        alpha = (OCCLUSION_ALPHA * drop.abs() / limit).nan_to_num(0.0).clamp(0, 1).numpy()
        ax.imshow(drop.numpy(), cmap=OCCLUSION_CMAP, norm=norm, alpha=alpha, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        fig.text((box[0] + box[2]) / 2 / width, 1 - (box[3] + 4) / height, label, ha="center", va="top",
                 fontsize=OCC_LABEL_PT)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=OCCLUSION_CMAP), cax=axes(layout.colorbar))
    bar.set_ticks([-limit, 0.0, limit])
    bar.ax.tick_params(labelsize=OCC_LABEL_PT - 1)
    bar.set_label("score drop", fontsize=OCC_LABEL_PT)
    fig.text(MARGIN / width, 1 - 8 / height, title, ha="left", va="top", fontsize=OCC_TITLE_PT)
    fig.text(MARGIN / width, 8 / height, SIGN_CAPTION, ha="left", va="bottom", fontsize=OCC_CAPTION_PT)
    return fig


def save_occlusion(photos: Tensor, maps: Tensor, path: str | Path, title: str, labels: Sequence[str]) -> Path:
    """Save occlusion_figure(photos, maps, ...) as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    occlusion_figure(photos, maps, title, labels).savefig(path, dpi=DPI, facecolor="white")
    return path


def has_images(data: DataSpec | None) -> bool:
    """Whether `data` (a DataSpec or None) holds images to draw occlusion maps over."""
    images = getattr(data, "images", None)
    return isinstance(images, Tensor) and images.dim() == 4 and len(images) > 0


def unit_pictures(out: Path, method: str, preset: str, result: Visualization, i: int, data: DataSpec | None = None,
                  ) -> list[Path]:
    """Unit i's pictures under out/units: its own picture, plus the context (top patches) and snapshots (ascent)."""
    unit, k, layer = result.units[i], result.images_per_unit, result.layer
    base, title = out / "units" / tables.safe_name(method, layer, unit), unit_title(method, preset, layer, unit)
    own, note = slice(i * k, (i + 1) * k), unit_flags(result).get(unit, "")
    if isinstance(result, OcclusionMaps) and has_images(data):
        idx, maps = result.own_maps(i)
        paths = [save_occlusion(data.images[idx], maps, f"{base}.png", title, [f"image {j}" for j in idx])]
    elif isinstance(result, TopPatches):
        acts, sources = result.activations[i].tolist(), result.indices[i].tolist()
        paths = [save_sheet(result.images[own], f"{base}.png", title,
                            [f"{t} · act {a:.3g}" for t, a in zip(tile_labels(unit, k), acts)], min(k, 3)),
                 save_sheet(result.context[own], f"{base}__context.png", f"{title} · context",
                            [f"image {s} · act {a:.3g}" for s, a in zip(sources, acts)], min(k, 3))]
    else:
        paths = [save_sheet(result.images[own], f"{base}.png", title, tile_labels(unit, k), min(k, 9), title_note=note)]
    if isinstance(result, Ascent) and result.snapshots:
        paths.append(save_snapshots(result, i, f"{base}__snapshots.png", f"{title} · snapshots", note))
    return paths


def save_snapshots(result: Ascent, i: int, path: str | Path, title: str, note: str = "") -> Path:
    """Unit i's ascent images after each snapshot step and at the end, a row per image, labelled 'step <s>'."""
    k = result.images_per_unit
    steps = {s: result.snapshots[s] for s in sorted(result.snapshots)}
    steps.setdefault(result.steps, result.images)  # the final images, unless the last step is a snapshot already
    frames = [(s, j, images[i * k + j]) for j in range(k) for s, images in steps.items()]
    labels = [f"step {s}" if k == 1 else f"step {s} · {j}" for s, j, _ in frames]
    return save_sheet(torch.stack([f for _, _, f in frames]), path, title, labels, len(steps), title_note=note)


def save_result_pictures(out: str | Path, method: str, result: Visualization, data: DataSpec | None = None,
                         preset: str = "") -> list[Path]:
    """A run's pictures of one result: the labelled grid out/grids/<method>__<layer>.png and each unit's pictures
    (unit_pictures); returns the paths written."""
    out, k, flagged = Path(out), result.images_per_unit, unit_flags(result)
    labels = [label for unit in result.units for label in tile_labels(unit, k)]
    notes = [flagged.get(unit, "") for unit in result.units for _ in range(k)] if flagged else []
    grid = save_sheet(result.images, out / "grids" / f"{tables.safe_name(method, result.layer)}.png",
                      grid_title(method, preset, result.layer), labels, k if k > 1 else 8, notes=notes)
    return [grid, *(p for i in range(len(result.units)) for p in unit_pictures(out, method, preset, result, i, data))]
