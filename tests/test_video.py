"""Labelled side-by-side video frames."""

import numpy as np

from jaxplanet import video


def test_side_by_side_shape_captions_and_borders():
    steps = 4
    real = np.zeros((steps, 8, 8, 3), np.uint8)
    model = np.full((steps, 8, 8, 3), 100, np.uint8)
    frames = video.side_by_side(
        [real, model],
        [["real"] * steps, ["model: observed"] * 2 + ["model: open loop"] * 2],
        [None, [video.GREEN] * 2 + [video.RED] * 2],
        scale=2,
        border=1,
    )
    assert frames.shape == (steps, video.CAPTION_HEIGHT + 16, 32, 3)
    assert frames.dtype == np.uint8
    body = frames[:, video.CAPTION_HEIGHT :]
    np.testing.assert_array_equal(body[:, :, :16], 0)  # the real panel: unchanged, no border
    np.testing.assert_array_equal(body[:2, 0, 16], [video.GREEN] * 2)  # observed: green border
    np.testing.assert_array_equal(body[2:, 0, 16], [video.RED] * 2)  # open loop: red border
    np.testing.assert_array_equal(body[:, 5, 20], 100)  # panel inside the border
    # Captions are drawn (white text pixels on black) and differ where the text differs.
    header = frames[:, : video.CAPTION_HEIGHT]
    assert header[0, :, :16].max() > 128
    assert not np.array_equal(header[1, :, 16:], header[2, :, 16:])
    np.testing.assert_array_equal(header[0], header[1])


def test_caption_is_cached_and_sized():
    a = video.caption("real", 64)
    assert a.shape == (video.CAPTION_HEIGHT, 64, 3) and a.dtype == np.uint8
    assert video.caption("real", 64) is a
