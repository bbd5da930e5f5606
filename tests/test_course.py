"""The course's switch between the papers' setting and the offline one."""

import pytest
import torch

from disciplined_widgets.course import mean_and_spread, setting
from disciplined_widgets.models import MLP


def test_without_a_gpu_the_offline_setting_says_why():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the paper's setting applies")
    chosen = setting(offline_data="digits", offline_model=lambda: MLP(64))
    assert not chosen.paper and "no CUDA GPU" in chosen.message
    assert torch.get_num_threads() == 1 and "one CPU thread" in chosen.message
    train, val = chosen.loaders(batch_size=32)
    x, y = next(iter(train))
    assert x.shape == (32, 1, 8, 8) and chosen.make_model()(x).shape == (32, 10)
    with pytest.raises(RuntimeError, match="not available"):
        setting(use_paper=True)


def test_offline_options_reach_the_data_and_nothing_downloads(tmp_path):
    chosen = setting(use_paper=False, offline_options={"num_samples": 1000}, root=tmp_path)
    assert len(chosen.data.x_train) + len(chosen.data.x_val) == 1000
    assert "asked for" in chosen.message and not list(tmp_path.iterdir())


def test_mean_and_spread_of_a_claims_figure_over_seeds():
    mean, spread = mean_and_spread([0.5, 0.75, 0.25])
    assert mean == pytest.approx(0.5) and spread == pytest.approx(0.5)
    assert mean_and_spread(iter([2.0])) == (2.0, 0.0)  # any iterable, one seed has no spread
