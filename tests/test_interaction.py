"""Cross-modal index maths against values derived from the release's code (docs/MODEL.md §4)."""
import torch

from uniavgen_core.model.interaction import a2v_windows, v2a_interpolation


def test_a2v_windows_at_the_released_duration():
    windows = a2v_windows(506, 21, 5)
    assert len(windows) == 21 and {len(w) for w in windows} == {51}
    assert list(windows[0]) == [0] * 38 + list(range(1, 14))
    assert list(windows[1]) == [0] * 7 + list(range(1, 45))
    for i in range(2, 20):
        assert list(windows[i]) == list(range(25 * i - 31, 25 * i + 20))
    assert list(windows[20]) == list(range(469, 506)) + [505] * 14


def test_a2v_windows_even_window_is_made_odd_and_short_audio_clamps():
    assert a2v_windows(300, 11, 4) == a2v_windows(300, 11, 5)
    for s, t in ((100, 21), (1000, 21), (506, 11), (7, 3)):
        windows = a2v_windows(s, t, 5)
        assert len({len(w) for w in windows}) == 1
        assert all(0 <= j < s for w in windows for j in w)


def test_v2a_interpolation_float32_tail_weights_sum_to_two():
    down, up, w_down, w_up = v2a_interpolation(506, 21, torch.float32, "cpu")
    total = w_down + w_up
    assert torch.allclose(total[:500], torch.ones(500), atol=1e-5)
    assert torch.allclose(total[500:], torch.full((6,), 2.0), atol=1e-5)
    assert int(down[-1]) == int(up[-1]) == 20 and int(down[0]) == 0 and int(up[0]) == 1


def test_v2a_interpolation_bf16_positions_are_quantised_as_released():
    # p(100) = 16.0, p(256) = p(257) = 41.0 and tokens 499..505 weigh 2 (docs/MODEL.md §4.2)
    f = 81
    p = torch.arange(506).to(torch.bfloat16) / (506 / f)
    assert float(p[100]) == 16.0 and float(p[256]) == float(p[257]) == 41.0
    down, up, w_down, w_up = v2a_interpolation(506, 21, torch.bfloat16, "cpu")
    total = (w_down + w_up).float()
    assert torch.equal(total[499:], torch.full((7,), 2.0)) and float(total[498]) == 1.0
