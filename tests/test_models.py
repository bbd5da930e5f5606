"""Model shapes and parameter counts (the CIFAR ResNets match He et al.'s 0.27M and 0.85M)."""

import pytest
import torch

from disciplined_widgets.models import (CNN1D, MLP, CifarResNet, Smith3Layer, SmallCNN,
                                        count_parameters, resnet20, resnet56)


@pytest.mark.parametrize("model,inputs,params", [
    (MLP(), torch.randn(3, 40), 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
    (CNN1D(), torch.randn(3, 40), 6826),
    (SmallCNN(), torch.randn(3, 1, 8, 8), 19562),
    (SmallCNN(), torch.randn(3, 1, 28, 28), 19562),
    (Smith3Layer(), torch.randn(3, 3, 32, 32),
     (3 * 25 * 32 + 32) + (32 * 25 * 32 + 32) + (32 * 25 * 64 + 64) + (64 * 4 * 4 * 10 + 10)),
    (resnet20(), torch.randn(3, 3, 32, 32), 269_722),
    (resnet56(), torch.randn(3, 3, 32, 32), 853_018),
])
def test_output_shape_and_parameter_count(model, inputs, params):
    assert model(inputs).shape == (3, 10)
    assert count_parameters(model) == params


def test_cnn1d_accepts_channels_first_too():
    assert CNN1D(in_channels=2)(torch.randn(4, 2, 40)).shape == (4, 10)


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=21)


def test_resnet_has_no_shortcut_parameters():
    # option A: 3 convs per block pair + BN; only convs, BN and the classifier hold parameters
    model = resnet20(num_classes=100)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    names = {name.split(".")[-2] for name, _ in model.named_parameters() if "blocks" in name}
    assert names == {"conv1", "bn1", "conv2", "bn2"}
