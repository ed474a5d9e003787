"""The study's one-dimensional ResNet-18 on raw 16 kHz audio (Table 1) and its ten layers.

The network follows Table 1 of the study exactly: a 1 x 49 first convolution (stride 4,
padding 24) and a 1 x 9 max pool (stride 4, padding 4), then four stages of two residual
blocks with 1 x 9 convolutions.  The first block of stages 3, 4 and 5 strides by 4 and
doubles the width, so its shortcut is a 1 x 1 projection (stride 4) followed by batch
normalization.  Convolutions carry no bias because batch normalization follows each one;
with that, the parameter count is 11,195,890, the figure an independent implementation
measured.

Every convolution is "same"-padded, so frame ``k`` of a layer whose frames are ``hop``
samples apart is centred on sample ``k * hop`` of its input (see :func:`frame_centres`);
this is what lets :mod:`bidsapp.audio.features` run the network once over a whole clip.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

SAMPLE_RATE = 16_000
"""Sampling rate of the network input in Hz."""

WINDOW_SAMPLES = 50_176
"""Length of one training window in samples (3.136 s); 49 conv5 frames."""

N_TAGS = 50
"""Width of the output layer: the 50 most frequent MagnaTagATune tags."""


class Layer(NamedTuple):
    """One of the ten layers the study compares with the brain.

    Attributes
    ----------
    name : str
        Module name, as in Table 1 (``conv1``, ``conv2_1``, ... ``fc``).
    width : int
        Number of units (channels) whose activations form the layer's features.
    hop : int
        Samples of 16 kHz audio between two consecutive frames of the layer.
    """

    name: str
    width: int
    hop: int


LAYERS: tuple[Layer, ...] = (
    Layer("conv1", 64, 4),
    Layer("conv2_1", 64, 16),
    Layer("conv2_2", 64, 16),
    Layer("conv3_1", 128, 64),
    Layer("conv3_2", 128, 64),
    Layer("conv4_1", 256, 256),
    Layer("conv4_2", 256, 256),
    Layer("conv5_1", 512, 1024),
    Layer("conv5_2", 512, 1024),
    Layer("fc", N_TAGS, 1024),
)
"""The study's ten layers in order (layer 1 is ``conv1``, layer 10 is ``fc``).

``conv1`` is taken after its ReLU and before the max pool; each ``convN_M`` is the output of
residual block M of stage N after the ReLU that follows the addition; ``fc`` is the 50
pre-sigmoid logits of a window (see ``docs/audio.md`` for why logits).
"""

LAYER_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS)

FRAME_HOP = 1024
"""Hop of conv5 in samples (64 ms): the common frame grid every layer is reduced to."""

WINDOW_FRAMES = WINDOW_SAMPLES // FRAME_HOP
"""conv5 frames in one training window (49); the fc layer averages this many."""


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Conv1d:
    # No bias: the batch normalization right after it has its own shift.
    return nn.Conv1d(
        in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
    )


class ResidualBlock(nn.Module):
    """Two 1 x 9 convolutions with a shortcut: ``relu(bn(conv(relu(bn(conv(x))))) + s(x))``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    stride : int
        Stride of the first convolution; when it is not 1 or the width changes, the shortcut
        is a strided 1 x 1 convolution followed by batch normalization (a projection).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv_a = _conv(in_channels, out_channels, 9, stride)
        self.bn_a = nn.BatchNorm1d(out_channels)
        self.conv_b = _conv(out_channels, out_channels, 9, 1)
        self.bn_b = nn.BatchNorm1d(out_channels)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _conv(in_channels, out_channels, 1, stride), nn.BatchNorm1d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output after the final ReLU, shape (batch, out_channels, frames)."""
        out = F.relu(self.bn_a(self.conv_a(x)))
        out = self.bn_b(self.conv_b(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class ResNet18Audio(nn.Module):
    """The study's 1D ResNet-18 (Table 1) for 16 kHz mono audio and 50 tags.

    The module names equal the layer names of :data:`LAYERS`, so a state dict reads
    ``conv3_1.shortcut.0.weight`` and so on.  ``forward`` returns logits; apply
    ``torch.sigmoid`` for tag probabilities.

    Notes
    -----
    Weights are initialised as in He et al. (2015): normal with standard deviation
    ``sqrt(2 / fan_in)``; batch normalization starts as the identity; the fc bias at zero.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = _conv(1, 64, 49, 4)
        self.bn1 = nn.BatchNorm1d(64)
        self.pool = nn.MaxPool1d(9, stride=4, padding=4)
        self.conv2_1 = ResidualBlock(64, 64)
        self.conv2_2 = ResidualBlock(64, 64)
        self.conv3_1 = ResidualBlock(64, 128, stride=4)
        self.conv3_2 = ResidualBlock(128, 128)
        self.conv4_1 = ResidualBlock(128, 256, stride=4)
        self.conv4_2 = ResidualBlock(256, 256)
        self.conv5_1 = ResidualBlock(256, 512, stride=4)
        self.conv5_2 = ResidualBlock(512, 512)
        self.fc = nn.Linear(512, N_TAGS)
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def layer_activations(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the convolutional part over audio of any length.

        Parameters
        ----------
        audio : torch.Tensor
            Shape (batch, samples) or (batch, 1, samples), 16 kHz.

        Returns
        -------
        dict of str to torch.Tensor
            ``conv1`` ... ``conv5_2`` (every layer of :data:`LAYERS` but ``fc``), each of shape
            (batch, width, frames); ``conv1`` is after its ReLU, before the max pool.
        """
        x = audio if audio.ndim == 3 else audio[:, None, :]
        x = F.relu(self.bn1(self.conv1(x)))
        activations = {"conv1": x}
        x = self.pool(x)
        for name in LAYER_NAMES[1:-1]:
            x = getattr(self, name)(x)
            activations[name] = x
        return activations

    def fc_frames(self, conv5: torch.Tensor, window_frames: int = WINDOW_FRAMES) -> torch.Tensor:
        """Return the fc logits of a window centred on every conv5 frame.

        A window of 49 conv5 frames is what the network saw in training; its fc output is the
        linear layer applied to the mean of those frames (the global average pool).  Near the
        clip's edges the window is cut to the frames that exist.

        Parameters
        ----------
        conv5 : torch.Tensor
            ``conv5_2`` activations, shape (batch, 512, frames).
        window_frames : int, optional
            Frames averaged per window (odd); 49 by default.

        Returns
        -------
        torch.Tensor
            Logits, shape (batch, 50, frames).
        """
        pooled = F.avg_pool1d(
            conv5, window_frames, stride=1, padding=window_frames // 2, count_include_pad=False
        )
        return torch.einsum("bct,oc->bot", pooled, self.fc.weight) + self.fc.bias[:, None]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Return the 50 tag logits of each input window, shape (batch, 50)."""
        conv5 = self.layer_activations(audio)["conv5_2"]
        return self.fc(conv5.mean(dim=-1))


def n_frames(n_samples: int, hop: int) -> int:
    """Return how many frames a layer with hop ``hop`` has for ``n_samples`` of audio.

    Every stride-4 step maps ``n`` frames to ``ceil(n / 4)``, and nested ceilings of integer
    divisions collapse, so the count is ``ceil(n_samples / hop)``.
    """
    return -(-int(n_samples) // int(hop))


def frame_centres(layer: str | Layer, count: int) -> np.ndarray:
    """Return the time in seconds on which each frame of a layer is centred.

    Because every convolution and pool pads by half its kernel, frame ``k`` of a layer with
    hop ``S`` is centred on input sample ``k * S`` (its receptive field is symmetric about
    it).  ``fc`` frames are centred like the conv5 frames they average.

    Parameters
    ----------
    layer : str or Layer
        A name from :data:`LAYER_NAMES` or a :class:`Layer`.
    count : int
        Number of frames.

    Returns
    -------
    numpy.ndarray
        Shape (count,), seconds from the first sample.
    """
    hop = layer.hop if isinstance(layer, Layer) else LAYERS[LAYER_NAMES.index(layer)].hop
    return np.arange(count) * (hop / SAMPLE_RATE)
