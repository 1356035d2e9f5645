"""frames: the simplex ETF and orthogonal frame, and the NC2/NC3 Gram targets built from them."""
import math

import pytest
import torch

from nc_repro import frames


@pytest.mark.parametrize('K', [2, 3, 4, 10])
def test_simplex_etf_rows_are_unit_with_cosine_minus_one_over_k_minus_one(K):
    etf = frames.simplex_etf(K)
    gram = etf @ etf.T
    torch.testing.assert_close(torch.diag(gram), torch.ones(K, dtype=torch.float64), rtol=0, atol=1e-12)
    off_diagonal = gram[~torch.eye(K, dtype=torch.bool)]
    torch.testing.assert_close(off_diagonal, torch.full_like(off_diagonal, -1 / (K - 1)), rtol=0, atol=1e-12)
    torch.testing.assert_close(etf.sum(0), torch.zeros(K, dtype=torch.float64), rtol=0, atol=1e-12)


def test_simplex_etf_in_more_dimensions_occupies_the_first_k_coordinates():
    etf = frames.simplex_etf(4, 7, dtype=torch.float32)
    assert etf.shape == (4, 7) and etf.dtype == torch.float32
    assert torch.equal(etf[:, 4:], torch.zeros(4, 3))
    assert torch.equal(etf[:, :4], frames.simplex_etf(4, dtype=torch.float32))
    # J's --ETF_fc with fewer dimensions than classes keeps the first coordinates (not an ETF)
    assert torch.equal(frames.simplex_etf(4, 2), frames.simplex_etf(4)[:, :2])


def test_gram_targets_are_the_normalised_grams_of_the_frames():
    for K in (2, 5, 10):
        etf = frames.simplex_etf(K)
        gram = etf @ etf.T
        torch.testing.assert_close(frames.simplex_etf_gram(K), gram / torch.linalg.norm(gram), rtol=0, atol=1e-14)
        assert float(torch.linalg.norm(frames.simplex_etf_gram(K))) == pytest.approx(1.0, abs=1e-14)
        orthogonal = frames.orthogonal_frame(K, K + 3)
        assert torch.equal(orthogonal @ orthogonal.T, frames.orthogonal_frame_gram(K))
    assert frames.simplex_etf_gram(3)[0, 1] == pytest.approx(-1 / (3 * math.sqrt(2)), rel=1e-15)


def test_frozen_etf_classifier_holds_the_simplex_etf():
    import models
    from models.base import freeze_to_simplex_etf
    layer = torch.nn.Linear(16, 10)
    freeze_to_simplex_etf(layer)
    assert not layer.weight.requires_grad and layer.bias.requires_grad
    assert torch.equal(layer.weight, frames.simplex_etf(10, 16, dtype=torch.float32))
    assert hasattr(models, 'build_model')
