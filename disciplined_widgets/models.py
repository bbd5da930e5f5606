"""Models used by the course and the papers.

- :class:`MLP` and :class:`CNN1D` for MNIST-1D (inputs N x 40);
- :class:`SmallCNN` for digits and MNIST (N x C x H x W, any size);
- :func:`resnet20` / :func:`resnet56`: the CIFAR ResNets of He et al. (2016, section 4.2),
  6n+2 layers with 16/32/64 channels and parameter-free (option A) shortcuts, as used by
  Smith for super-convergence (0.27M and 0.85M parameters);
- :class:`Smith3Layer`: the shallow 3-layer CIFAR-10 network (Caffe's ``cifar10_full``)
  of Smith's CLR paper (arXiv:1506.01186, section 4.1.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class MLP(nn.Module):
    """Flatten, then ``len(hidden)`` ReLU layers and a linear classifier."""

    def __init__(self, in_features: int = 40, hidden: tuple[int, ...] = (100, 100),
                 num_classes: int = 10, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN1D(nn.Module):
    """Three strided 1-D convolutions (optionally with BatchNorm), global average pool, linear.

    Accepts N x L sequences (MNIST-1D) or N x C x L.
    """

    def __init__(self, in_channels: int = 1, channels: int = 32, num_classes: int = 10,
                 batch_norm: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for kernel, stride in ((5, 2), (3, 2), (3, 1)):
            layers.append(nn.Conv1d(width, channels, kernel, stride, padding=kernel // 2,
                                    bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(channels))
            layers.append(nn.ReLU())
            width = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x.unsqueeze(1)
        return self.classifier(self.features(x).mean(dim=2))


class SmallCNN(nn.Module):
    """Two 3x3 conv blocks (32, 64 channels, BatchNorm, ReLU, 2x2 max-pool), global pool, linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width))
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class _BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a strided, zero-padded identity shortcut (option A)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra_channels = stride, cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.extra_channels == 0:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 images with ``depth = 6n + 2`` layers (He et al. 2016, section 4.2)."""

    def __init__(self, depth: int = 56, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())
        blocks: list[nn.Module] = []
        width = 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(_BasicBlock(width, cout, 2 if stage and i == 0 else 1))
                width = cout
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR (0.27M parameters)."""
    return CifarResNet(20, num_classes)


def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR (0.85M parameters), Smith's super-convergence network."""
    return CifarResNet(56, num_classes)


class Smith3Layer(nn.Module):
    """Caffe's ``cifar10_full``: three 5x5 convs (32, 32, 64) with pooling and LRN, one linear.

    The shallow network of Smith's CLR paper for CIFAR-10 (about 90k parameters).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.MaxPool2d(3, 2, ceil_mode=True), nn.ReLU(),
            nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75),
            nn.Conv2d(32, 32, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.LocalResponseNorm(3, alpha=5e-5, beta=0.75),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Flatten(),
        )
        with torch.no_grad():
            features = self.features(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
