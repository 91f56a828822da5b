"""Min-max normalizer: round trip, [-1, 1] range, constant dimensions, images, state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.policy.normalizer import LinearNormalizer


def test_round_trip_and_range() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.01] + [0.0, -5.0, 2.0]
    norm = LinearNormalizer({"pose": 3})
    norm.fit("pose", data)
    x = torch.as_tensor(data, dtype=torch.float32)
    y = norm.normalize("pose", x)
    assert torch.allclose(y.min(0).values, -torch.ones(3), atol=1e-5)
    assert torch.allclose(y.max(0).values, torch.ones(3), atol=1e-5)
    assert torch.allclose(norm.unnormalize("pose", y), x, atol=1e-4)
    stats = norm.stats("pose")
    assert np.allclose(stats["min"], data.min(0), atol=1e-6) and np.allclose(stats["max"], data.max(0), atol=1e-6)
    assert np.allclose(stats["mean"], data.mean(0), atol=1e-5)


def test_constant_dimension_maps_to_zero_and_stays_finite() -> None:
    data = np.stack([np.linspace(0, 1, 50), np.full(50, 0.25)], axis=1)
    norm = LinearNormalizer({"a": 2})
    norm.fit("a", data)
    y = norm.normalize("a", torch.tensor([[0.5, 0.25], [0.5, 0.75]]))
    assert torch.isfinite(y).all()
    assert y[0, 1] == 0  # the constant value sits at the middle of the range
    assert y[1, 1] == pytest.approx(0.5)  # unit scale: off-distribution values stay ordered and bounded
    assert torch.allclose(norm.unnormalize("a", y), torch.tensor([[0.5, 0.25], [0.5, 0.75]]))


def test_image_range_and_batched_shapes() -> None:
    norm = LinearNormalizer({"camera_0": 1})
    norm.set_image_range("camera_0")
    img = torch.rand(2, 2, 3, 8, 8)
    y = norm.normalize("camera_0", img)
    assert torch.allclose(y, img * 2 - 1)
    assert torch.allclose(norm.unnormalize("camera_0", y), img, atol=1e-6)


def test_state_dict_round_trip_and_errors() -> None:
    norm = LinearNormalizer({"action": 2})
    norm.fit("action", np.array([[0.0, 1.0], [2.0, 5.0]]))
    other = LinearNormalizer({"action": 2})
    other.load_state_dict(norm.state_dict())
    x = torch.tensor([[1.0, 3.0]])
    assert torch.allclose(other.normalize("action", x), torch.tensor([[0.0, 0.0]]))
    assert all(not p.requires_grad for p in norm.parameters())  # never trained
    with pytest.raises(ValueError, match="NaN"):
        norm.fit("action", np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="features"):
        norm.fit("action", np.zeros((4, 3)))
    with pytest.raises(KeyError, match="no key"):
        norm.fit("gripper", np.zeros((4, 1)))
