import numpy as np
import pytest
import torch

from kgattr.model import FusionGNN
from kgattr.train import fit_temperatures, neighbour_votes


def test_temperature_recovers_overconfidence():
    rng = np.random.default_rng(0)
    value_attribute = np.array([0, 0, 0, 1, 1])
    true = rng.normal(size=(4000, 5)).astype(np.float32)
    attr = rng.integers(0, 2, 4000)
    truth = np.empty(4000, dtype=np.int64)
    for i, a in enumerate(attr):
        cols = np.flatnonzero(value_attribute == a)
        p = np.exp(true[i, cols]) / np.exp(true[i, cols]).sum()
        truth[i] = cols[rng.choice(len(cols), p=p)]
    temps = fit_temperatures(true * 3, truth, np.ones_like(true, dtype=bool), value_attribute, 2)
    assert temps == pytest.approx([3, 3], rel=0.15)


def test_neighbour_votes_share_among_neighbours_with_the_attribute():
    import scipy.sparse as sp

    value_attribute = np.array([0, 0, 1])
    values = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float32))
    index = np.array([[0, 1, 2], [2, -1, -1]])
    score = np.ones((2, 3), dtype=np.float32)
    votes = neighbour_votes(index, score, values, value_attribute, sharpness=0.05)
    assert votes.shape == (2, 3, 2)
    assert torch.allclose(votes[0, :, 1], torch.tensor([2 / 3, 1 / 3, 1.0]))
    assert torch.allclose(votes[1, :, 1], torch.tensor([1.0, 0.0, 0.0]))


def test_model_repr_and_config():
    m = FusionGNN(text_dim=8, lexical_size=20, num_categories=3, num_values=5, num_attributes=2,
                  value_attribute=[0, 0, 0, 1, 1], hidden_channels=16)
    assert repr(m) == "FusionGNN(text_dim=8, lexical_size=20, num_values=5, hidden_channels=16)"
    assert FusionGNN(**m.get_config()).get_config() == m.get_config()
