"""A discrete image tokenizer for 64x64 scene-world images: conv encoder -> FSQ -> conv decoder.

FSQ (finite scalar quantization, Mentzer et al. 2023, arXiv:2309.15505) has no codebook to learn and
none to collapse: the encoder emits ``len(levels)`` numbers per latent cell, each is bounded and rounded
to one of ``levels[i]`` values, and the tuple of rounded values *is* the code (mixed radix, so levels
[8, 5, 5, 5] give 1000 codes). Rounding passes gradients straight through.

The 64x64 image becomes an 8x8 grid of codes, 64 tokens in row-major order. Both halves work at low
resolution and move pixels with pixel (un)shuffle, so a training step stays cheap on one CPU thread.
The decoder's last layer (:class:`PaletteHead`) paints each pixel as the background blended with one of
the world's colours, the way the renderer anti-aliases, so reconstructed colours are exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from r3graph_scenes.world import BACKGROUND, RGB

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models" / "scenes-imagegen" / "tokenizer"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TRAIN_COMMAND = "python -m r3graph_scenes.imagegen.train_tokenizer --out scenes/r3graph_scenes/models/scenes-imagegen/tokenizer"  # noqa: E501


@dataclass(frozen=True)
class TokenizerConfig:
    """Shapes of the network; stored next to the weights as config.json."""

    levels: tuple[int, ...] = (8, 5, 5, 5)
    image_size: int = 64
    grid: int = 8  # latent cells per side: tokens_per_image = grid**2
    width: int = 32  # channels at 16x16
    latent_width: int = 64  # channels at 8x8
    blocks: int = 2  # residual blocks per resolution in each half
    fine_width: int = 16  # channels of the decoder's last stage, at 32x32 (0: none, 16x16 -> 64 px directly)
    output: str = "palette"  # "palette": background blended with the world's colours; "rgb": free colours

    @classmethod
    def from_dict(cls, data: dict) -> TokenizerConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "levels" in known:
            known["levels"] = tuple(known["levels"])
        return cls(**known)


class FSQ(nn.Module):
    """Bound each channel to ``levels[i]`` values, round (straight-through), and map to/from code ids."""

    levels: torch.Tensor
    basis: torch.Tensor

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        if not levels or any(level < 2 for level in levels):
            raise ValueError(f"every FSQ level must be at least 2, got {list(levels)}")
        lv = torch.tensor(list(levels), dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64), 0)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.codebook_size = int(np.prod(levels))

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        # tanh to (-L/2, L/2), shifted so even L gets L integer steps (the paper's bound()).
        half = (self.levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d) -> quantized values in [-1, 1] per channel, same shape."""
        bounded = self._bound(z.float())  # float32 even under autocast: bf16 would move the rounding edges
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / (self.levels // 2)

    def to_ids(self, quantized: torch.Tensor) -> torch.Tensor:
        steps = torch.round(quantized * (self.levels // 2) + self.levels // 2).to(torch.int64)
        return (steps * self.basis).sum(-1)

    def from_ids(self, ids: torch.Tensor) -> torch.Tensor:
        steps = (ids.unsqueeze(-1) // self.basis) % self.levels.to(torch.int64)
        return (steps.float() - self.levels // 2) / (self.levels // 2)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PaletteHead(nn.Module):
    """Per pixel: which world colour (softmax over the palette) and how much of it (sigmoid), blended
    over the background as the renderer's anti-aliasing blends it. Every output pixel then lies on a
    background-to-colour line, so colours are exact by construction and the decoder only has to learn
    where each colour is and how much of a pixel it covers: the edges."""

    channels = len(RGB) + 1

    def __init__(self) -> None:
        super().__init__()
        background = torch.tensor(BACKGROUND, dtype=torch.float32) / 127.5 - 1
        colours = torch.tensor(list(RGB.values()), dtype=torch.float32) / 127.5 - 1
        self.register_buffer("background", background.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("directions", colours - background, persistent=False)

    background: torch.Tensor
    directions: torch.Tensor

    def colour_targets(self, images: torch.Tensor, min_alpha: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
        """(palette index per pixel, mask of pixels holding at least ``min_alpha`` of a colour) of
        images in [-1, 1]: the colour whose background-to-colour line passes nearest the pixel."""
        diff = images - self.background
        norms = (self.directions**2).sum(1)
        fitted = (torch.einsum("nchw,dc->ndhw", diff, self.directions) / norms.view(1, -1, 1, 1)).clamp(0, 1)
        residual = (diff.unsqueeze(1) - fitted.unsqueeze(2) * self.directions.view(1, -1, 3, 1, 1)).norm(dim=2)
        index = residual.argmin(1)
        alpha = fitted.gather(1, index.unsqueeze(1)).squeeze(1)
        return index, alpha >= min_alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        which = torch.softmax(x[:, :-1], dim=1)
        colour = torch.einsum("nchw,cd->ndhw", which, self.directions)
        return self.background + torch.sigmoid(x[:, -1:]) * colour


class TokenizerNet(nn.Module):
    """Encoder (64 px -> 16x16 by unshuffle -> 8x8 by a stride-2 conv) and its mirror image, which
    goes on to 32x32 (``fine_width`` channels) before the last pixel shuffle."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        if config.output not in ("palette", "rgb"):
            raise ValueError(f"output must be 'palette' or 'rgb', got {config.output!r}")
        c, cl, d, cf = config.width, config.latent_width, len(config.levels), config.fine_width
        unshuffle = config.image_size // (2 * config.grid)  # 64 px, 8 cells -> 4 (to 16x16), then stride 2
        out = PaletteHead.channels if config.output == "palette" else 3
        if cf:
            last: list[nn.Module] = [nn.Conv2d(c, 4 * cf, 3, padding=1), nn.PixelShuffle(2), ResBlock(cf),
                                     nn.GroupNorm(8, cf), nn.SiLU(), nn.Conv2d(cf, out * (unshuffle // 2)**2, 3,
                                                                               padding=1),
                                     nn.PixelShuffle(unshuffle // 2)]
        else:
            last = [nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, out * unshuffle**2, 3, padding=1),
                    nn.PixelShuffle(unshuffle)]
        self.encoder = nn.Sequential(
            nn.PixelUnshuffle(unshuffle), nn.Conv2d(3 * unshuffle**2, c, 3, padding=1),
            *(ResBlock(c) for _ in range(config.blocks)),
            nn.Conv2d(c, cl, 4, stride=2, padding=1),
            *(ResBlock(cl) for _ in range(config.blocks)),
            nn.GroupNorm(8, cl), nn.SiLU(), nn.Conv2d(cl, d, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(d, cl, 3, padding=1),
            *(ResBlock(cl) for _ in range(config.blocks)),
            nn.Conv2d(cl, 4 * c, 3, padding=1), nn.PixelShuffle(2),
            *(ResBlock(c) for _ in range(config.blocks)), *last,
            *([PaletteHead()] if config.output == "palette" else []))
        self.fsq = FSQ(config.levels)

    def quantize(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) in [-1, 1] -> quantized latents (n, d, g, g)."""
        z = self.encoder(images).permute(0, 2, 3, 1)
        return self.fsq(z).permute(0, 3, 1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantize(images))


def to_tensor(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """PIL images -> (n, 3, size, size) float in [-1, 1]; RGB, box-resized like the world's renderer."""
    arrays = []
    for image in images:
        if not isinstance(image, Image.Image):
            raise TypeError(f"expected PIL images, got {type(image).__name__}")
        rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BOX)
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


def to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """(n, 3, H, W) in [-1, 1] -> PIL RGB images (clamped, rounded to 8 bits)."""
    arrays = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a, mode="RGB") for a in arrays]


@dataclass
class ImageTokenizer:
    """64x64 RGB image <-> 64 codes in [0, codebook_size). Inference is batched, on CPU, under
    ``torch.inference_mode``; the thread count is the caller's (``torch.set_num_threads``)."""

    net: TokenizerNet
    config: TokenizerConfig = field(default_factory=TokenizerConfig)
    batch_size: int = 256

    def __post_init__(self) -> None:
        self.net.eval()

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def tokens_per_image(self) -> int:
        return self.config.grid**2

    @property
    def codebook_size(self) -> int:
        return self.net.fsq.codebook_size

    @classmethod
    def load(cls, path: str | Path | None = None) -> ImageTokenizer:
        """Weights and config from ``path`` (default: the shipped folder)."""
        from safetensors.torch import load_file

        folder = Path(path) if path is not None else SHIPPED_DIR
        if not (folder / WEIGHTS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"no tokenizer in {folder} (needs {WEIGHTS_FILE} and {CONFIG_FILE}); "
                                    f"train one with: {TRAIN_COMMAND}")
        config = TokenizerConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
        net = TokenizerNet(config)
        state = {k: v.float() for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
        net.load_state_dict(state)
        return cls(net=net, config=config)

    @classmethod
    def untrained(cls, seed: int = 0, config: TokenizerConfig | None = None) -> ImageTokenizer:
        """Random weights, the shipped shapes: for testing code around the tokenizer."""
        config = config or TokenizerConfig()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = TokenizerNet(config)
        return cls(net=net, config=config)

    def save(self, path: str | Path) -> None:
        """config.json and float32 safetensors weights (a few MB) into ``path``."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(
            {**asdict(self.config), "codebook_size": self.codebook_size,
             "tokens_per_image": self.tokens_per_image}, indent=1) + "\n")

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, tokens_per_image) int64 codes, row-major over the latent grid."""
        if isinstance(images, Image.Image):
            raise TypeError("encode takes a sequence of images; wrap a single image in a list")
        out = [np.zeros((0, self.tokens_per_image), dtype=np.int64)]
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = to_tensor(images[start:start + self.batch_size], self.image_size)
                latents = self.net.quantize(pixels).permute(0, 2, 3, 1)
                out.append(self.net.fsq.to_ids(latents).reshape(len(pixels), -1).numpy())
        return np.concatenate(out)

    def check_codes(self, codes: np.ndarray | Sequence[Sequence[int]] | torch.Tensor) -> np.ndarray:
        """``codes`` as an (n, tokens_per_image) int64 array, or a ValueError that says what is wrong."""
        array = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes)
        if array.ndim != 2 or array.shape[1] != self.tokens_per_image:
            raise ValueError(f"codes must have shape (n, {self.tokens_per_image}), got {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"codes must be integers, got dtype {array.dtype}")
        bad = (array < 0) | (array >= self.codebook_size)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"code {int(array[row, col])} at image {row}, position {col} is outside "
                             f"[0, {self.codebook_size})")
        return array.astype(np.int64)

    def decode(self, codes: np.ndarray | Sequence[Sequence[int]] | torch.Tensor) -> list[Image.Image]:
        """(n, tokens_per_image) codes -> n RGB images of image_size px."""
        array = self.check_codes(codes)
        g = self.config.grid
        images: list[Image.Image] = []
        with torch.inference_mode():
            for start in range(0, len(array), self.batch_size):
                ids = torch.from_numpy(array[start:start + self.batch_size]).reshape(-1, g, g)
                latents = self.net.fsq.from_ids(ids).permute(0, 3, 1, 2)
                images.extend(to_images(self.net.decoder(latents)))
        return images
