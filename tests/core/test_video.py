"""Labelled side-by-side video frames."""

import numpy as np

from jaxplanet.core import video


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


def test_step_captions_follow_the_return():
    assert video.step_captions("real", [1.0, 2.0, 3.0]) == [
        "real t=0 R=0.0",
        "real t=1 R=1.0",
        "real t=2 R=3.0",
        "real t=3 R=6.0",
    ]
    ended = video.step_captions("dream", [60.0, 60.0, 0.0], ended=2)
    assert ended == [
        "dream t=0 R=0.0",
        "dream t=1 R=60.0",
        "dream ended R=120",
        "dream ended R=120",
    ]


def test_captions_draw_a_label_above_each_half_and_leave_the_frames():
    """The captioned frame differs from the uncaptioned one in the caption strip only."""
    steps = 3
    real = np.random.default_rng(0).integers(0, 255, (steps, 8, 8, 3), dtype=np.uint8)
    dream = np.full((steps, 8, 8, 3), 50, np.uint8)
    frames = video.side_by_side(
        [real, dream],
        [video.step_captions("real", [1.0, 2.0]), video.step_captions("dream", [0.5, 0.5])],
        scale=2,
    )
    plain = np.concatenate([p.repeat(2, axis=1).repeat(2, axis=2) for p in (real, dream)], axis=2)
    body, header = frames[:, video.CAPTION_HEIGHT :], frames[:, : video.CAPTION_HEIGHT]
    np.testing.assert_array_equal(body, plain)  # the frames themselves are unchanged
    assert header[:, :, :16].max() > 128 and header[:, :, 16:].max() > 128  # text per half
    assert not np.array_equal(header[0], header[1])  # the caption follows the step
