"""Chunk and window planning (no model): token ranges and windows checked by hand."""

import pytest

from llembed import Recipe, RecipeError
from llembed.chunking import ChunkPlan, chunk_token_spans, plan_chunks, plan_windows


def test_chunk_spans_by_hand():
    assert chunk_token_spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert chunk_token_spans(10, 5, 0) == [(0, 5), (5, 10)]
    assert chunk_token_spans(11, 5, 0) == [(0, 5), (5, 10), (10, 11)]
    assert chunk_token_spans(3, 4, 2) == [(0, 3)]  # a short text is one chunk
    assert chunk_token_spans(0, 4, 0) == [(0, 0)]  # an empty text still gets one (empty) chunk


def test_chunk_character_spans_follow_the_token_offsets():
    # "aa bb cc dd": tokens "aa", " bb", " cc", " dd"
    offsets = [(0, 2), (2, 5), (5, 8), (8, 11)]
    plan = plan_chunks(offsets, 11, chunk_tokens=2, overlap=1)
    assert plan.token_spans == ((0, 2), (1, 3), (2, 4))
    assert plan.char_spans == ((0, 5), (2, 8), (5, 11))
    assert plan_chunks([], 3, 2, 0).char_spans == ((0, 3),)


def test_a_text_that_fits_is_one_window_over_all_of_it():
    offsets = [(i, i + 1) for i in range(50)]
    plan = plan_chunks(offsets, 50, 20, 0)
    (window,) = plan_windows(plan, offsets, 50, window=60)
    assert window.token_span == (0, 50) and window.char_span == (0, 50) and window.chunks == (0, 1, 2)


def test_windows_hold_every_chunk_whole_with_half_the_spare_room_as_context():
    offsets = [(2 * i, 2 * i + 2) for i in range(130)]
    plan = plan_chunks(offsets, 260, chunk_tokens=20, overlap=0)  # 7 chunks: 0-20, ..., 120-130
    windows = plan_windows(plan, offsets, 260, window=60)
    # window 60 holds chunks 0-2; chunk 3 starts at 60 and takes (60 - 20) // 2 = 20 tokens of context
    assert [w.token_span for w in windows] == [(0, 60), (40, 100), (80, 130)]
    assert [w.chunks for w in windows] == [(0, 1, 2), (3, 4), (5, 6)]
    assert windows[1].char_span == (80, 200)
    held = [c for w in windows for c in w.chunks]
    assert held == list(range(7))
    for w in windows:
        for c in w.chunks:
            start, end = plan.token_spans[c]
            assert w.token_span[0] <= start and end <= w.token_span[1]
    assert sum(end - start for w in windows for start, end in [w.token_span]) <= 2 * 130


def test_a_chunk_longer_than_the_window_is_refused():
    plan = ChunkPlan(((0, 50), (50, 100)), ((0, 50), (50, 100)), 100)
    with pytest.raises(ValueError, match="does not fit"):
        plan_windows(plan, [(i, i + 1) for i in range(100)], 100, window=40)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"chunking": "sliding"}, "unknown chunking 'sliding'; choose one of none, mean, late"),
        ({"chunk_tokens": 0}, "chunk_tokens must be a positive integer"),
        ({"chunk_overlap": -1}, "chunk_overlap must be a non-negative integer"),
        ({"chunk_tokens": 64, "chunk_overlap": 64}, "chunk_overlap=64 must be smaller than chunk_tokens=64"),
    ],
)
def test_bad_chunking_fields_are_one_line_errors(fields, message):
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        Recipe(**fields)


def test_the_context_a_window_carries_is_at_most_two_chunks():
    offsets = [(i, i + 1) for i in range(300)]
    plan = plan_chunks(offsets, 300, chunk_tokens=10, overlap=0)
    windows = plan_windows(plan, offsets, 300, window=100)
    # spare room (100 - 10) // 2 = 45, capped at two chunks = 20: the second window starts at 100 - 20
    assert windows[1].token_span == (80, 180) and windows[1].chunks[0] == 10
