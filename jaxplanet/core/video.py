"""Labelled video frames: panels side by side under a caption strip that says what each shows.

    frames = video.side_by_side(
        [real, predicted],                                   # uint8 [T, H, W, 3] each
        [["real"] * T, ["model: observed"] * 5 + ["model: open loop"] * (T - 5)],
        borders=[None, [GREEN] * 5 + [RED] * (T - 5)],
    )                                                        # uint8 [T, CAPTION + s*H, n*s*W, 3]

Captions are drawn once per distinct text with matplotlib (Agg) and cached. `step_captions`
makes per-frame texts that follow an episode (``"real t=12 R=3.4"``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["CAPTION_HEIGHT", "GREEN", "RED", "caption", "side_by_side", "step_captions"]

CAPTION_HEIGHT = 18
GREEN = (40, 180, 60)
RED = (220, 50, 40)


@functools.lru_cache(maxsize=64)
def caption(text: str, width: int, height: int = CAPTION_HEIGHT) -> np.ndarray:
    """uint8 [height, width, 3]: ``text`` in white on black, centred."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="black")
    fig.text(0.5, 0.5, text, color="white", ha="center", va="center", fontsize=height * 0.45)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]
    return np.ascontiguousarray(image[:height, :width])


def side_by_side(
    panels: Sequence[np.ndarray],
    titles: Sequence[Sequence[str]],
    borders: Sequence[Sequence[tuple[int, int, int]] | None] | None = None,
    scale: int = 2,
    border: int = 2,
) -> np.ndarray:
    """Joins panels left to right, each upscaled ``scale`` x and captioned per frame.

    Args:
      panels: n arrays uint8 [T, H, W, 3] (same T, H, W).
      titles: per panel, T caption texts (one per frame).
      borders: per panel, None or T RGB colours of a ``border``-pixel frame around the panel.
      scale: nearest-neighbour upscaling of each panel.
      border: border width in output pixels.

    Returns:
      uint8 [T, CAPTION_HEIGHT + scale * H, n * scale * W, 3].
    """
    steps = len(panels[0])
    out = []
    for p, panel in enumerate(panels):
        panel = np.asarray(panel, np.uint8).repeat(scale, axis=1).repeat(scale, axis=2)
        width = panel.shape[2]
        frames = []
        for t in range(steps):
            frame = panel[t].copy()
            colours = borders[p] if borders is not None else None
            if colours is not None:
                c = np.asarray(colours[t], np.uint8)
                frame[:border], frame[-border:] = c, c
                frame[:, :border], frame[:, -border:] = c, c
            frames.append(np.concatenate([caption(titles[p][t], width), frame], axis=0))
        out.append(np.stack(frames))
    return np.concatenate(out, axis=2)


def step_captions(
    label: str, rewards: Sequence[float] | np.ndarray, ended: int | None = None
) -> list[str]:
    """Per-frame captions of an episode's T + 1 frames: ``"<label> t=<t> R=<return so far>"``
    (``"<label> ended R=<return>"`` from the frame at which it ended), short enough for a
    128-pixel caption (about 19 characters).

    Args:
      label: what the panel shows ("real", "dream", ...).
      rewards: the T rewards between the frames (frame t has seen ``rewards[:t]``).
      ended: the index of the frame at which the episode ended, or None.

    Returns:
      T + 1 strings.
    """
    returns = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, np.float64))])
    out = []
    for t, ret in enumerate(returns):
        shown = f"{ret:.0f}" if abs(ret) >= 100 else f"{ret:.1f}"
        done = ended is not None and t >= ended
        out.append(f"{label} ended R={shown}" if done else f"{label} t={t} R={shown}")
    return out
