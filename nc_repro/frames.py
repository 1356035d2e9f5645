"""The reference frames of Neural Collapse, defined once, and the NC2/NC3 targets built from them.

A simplex equiangular tight frame (ETF) of K classes is K unit vectors with pairwise cosine
-1/(K-1): the rows of sqrt(K/(K-1)) (I_K - 11^T/K) (Papyan, Han & Donoho 2020; docs/papers.md), placed
in the first K of d coordinates. The orthogonal frame is the first K standard basis vectors, the
bias-free geometry of balanced data under MSE (Dang et al. 2023, balanced theorem; docs/papers.md). The measures compare
a matrix with a target through ``nc_measures.alignment_error``, which scales both to unit
Frobenius norm, so each target below is named for the geometry it encodes.
torch only: models use ``simplex_etf`` for the frozen classifier of Zhou 2022's --ETF_fc.
"""
import math

import torch


def centring_projector(K, dtype=torch.float64):
    """I_K - 11^T/K (K, K): removes the mean of K class vectors."""
    return torch.eye(K, dtype=dtype) - torch.ones(K, K, dtype=dtype) / K


def simplex_etf(K, dim=None, dtype=torch.float64):
    """(K, dim) simplex ETF, one unit row per class: sqrt(K/(K-1)) (I - 11^T/K) times the
    rectangular identity eye(K, dim), the frozen classifier of J's --ETF_fc. dim defaults to K;
    dim < K keeps J's first dim coordinates (then the rows are not an ETF)."""
    etf = math.sqrt(K / (K - 1)) * centring_projector(K, dtype)            # (K, K), unit rows
    return etf if dim is None else etf @ torch.eye(K, dim, dtype=dtype)


def orthogonal_frame(K, dim=None, dtype=torch.float64):
    """(K, dim) orthogonal frame: the first K standard basis vectors as rows."""
    return torch.eye(K, K if dim is None else dim, dtype=dtype)


# NC2/NC3 targets: K x K Gram matrices of unit Frobenius norm

def simplex_etf_gram(K):
    """(I_K - 11^T/K) / sqrt(K-1): the Gram matrix of a simplex ETF, scaled to unit Frobenius
    norm, the NC2 target of the class means and the classifier (Papyan 2020, NC2; Zhou 2022)."""
    return centring_projector(K) / (K - 1) ** 0.5


def orthogonal_frame_gram(K):
    """I_K: the Gram matrix of an orthogonal frame (Dang 2023's bias-free balanced target)."""
    return torch.eye(K, dtype=torch.float64)
