"""Vision datasets as in-memory tensors (torch; import lazily).

MNIST-sized datasets fit in memory many times over, so instead of a per-sample ``DataLoader`` we hold the
whole split as one ``uint8`` tensor (on the training device) and slice batches out of it; normalisation and
CIFAR augmentation run on whole batches. Files are read with numpy: the IDX files (``.gz`` or not) of
MNIST/Fashion-MNIST and the python batches of CIFAR-10, in the layouts torchvision uses. When no copy is found
torchvision's downloader is tried (machines with internet); when that fails too, one :class:`NcanvasError`
names the files it looked for.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import NcanvasError

ENV_DATA_DIR = "NCANVAS_DATA_DIR"
ENV_OFFLINE = "NCANVAS_OFFLINE"  # "1": never try to download


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per-channel statistics of the training split, in [0, 1] units
    std: tuple[float, ...]
    folders: tuple[str, ...]  # sub-folders of the data dir that may hold the files ("" = the dir itself)
    files: dict[str, tuple[str, ...]]  # split -> file names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


_IDX: dict[str, tuple[str, ...]] = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_CIFAR: dict[str, tuple[str, ...]] = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}

DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", 1, 28, tuple(str(d) for d in range(10)), (0.1307,), (0.3081,),
                         ("MNIST/raw", "mnist", ""), _IDX),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", 1, 28,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        (0.2860,), (0.3530,), ("FashionMNIST/raw", "fashion-mnist", "fashion_mnist"), _IDX),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), ("cifar-10-batches-py", "cifar10", ""), _CIFAR),
}
DATASET_NAMES = tuple(DATASETS)


@dataclass
class TensorData:
    """One split: ``x`` (N, C, H, W) uint8, ``y`` (N,) int64, on any device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device))

    def subset(self, idx: torch.Tensor) -> TensorData:
        return TensorData(self.x[idx], self.y[idx])


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise NcanvasError(f"unknown dataset {name!r}; datasets: {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None, home: Path | None = None) -> Path:
    """``data_dir`` if given, else ``$NCANVAS_DATA_DIR``, else ``<workspace>/data``."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]).expanduser()
    if home is None:
        from core.paths import resolve_home

        home = resolve_home()
    return home / "data"


# ---------------------------------------------------------------------------------------------- file readers

MAX_IDX_BYTES = 1 << 30  # the largest IDX payload read (MNIST's training images are 47 MB)


def read_idx(path: Path, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """An IDX file (uint8 payload) as an array: images (N, H, W) or labels (N,).

    The header is read first and only the bytes it declares are decompressed: a gzip bomb (a few MB inflating to
    GBs) costs one header read, and a header declaring more than ``max_bytes`` is refused before any payload."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 8:
                raise NcanvasError(f"{path} is not a uint8 IDX file")
            raw_dims = f.read(4 * head[3])
            if len(raw_dims) < 4 * head[3]:
                raise NcanvasError(f"{path} is truncated (inside its header)")
            dims = [int.from_bytes(raw_dims[4 * i: 4 * i + 4], "big") for i in range(head[3])]
            size = int(np.prod(dims, dtype=np.int64)) if dims else 0
            if size > max_bytes:
                raise NcanvasError(f"{path} declares {size:,} bytes of data ({' x '.join(map(str, dims))}), more "
                                   f"than the {max_bytes:,} an IDX file may hold here")
            payload = f.read(size + 1)  # one byte more: a file longer than its header says is not trusted either
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise NcanvasError(f"cannot read {path}: {e}") from None
    if len(payload) < size:
        raise NcanvasError(f"{path} is truncated: expected {size} values, found {len(payload)}")
    if len(payload) > size:
        raise NcanvasError(f"{path} holds more data than its header declares ({' x '.join(map(str, dims))})")
    return np.frombuffer(payload, dtype=np.uint8).copy().reshape(dims)  # writable, so torch can share it


class _NumpyOnlyUnpickler(pickle.Unpickler):
    # CIFAR's python batches are pickles; allow only what they contain, so a crafted file cannot run code.
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images (N, 3, 32, 32) uint8, labels (N,)."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as e:
        raise NcanvasError(f"{path} is not a readable CIFAR-10 batch ({e})") from None
    return data, labels


# ---------------------------------------------------------------------------------------------- locating files

def _find_split_files(info: DatasetInfo, root: Path, split: str) -> list[Path] | None:
    for folder in info.folders:
        d = root / folder if folder else root
        found = []
        for name in info.files[split]:
            hit = next((d / n for n in (name, name + ".gz") if (d / n).is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _download(info: DatasetInfo, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[info.name]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(str(root), train=train, download=True)


def _locate(info: DatasetInfo, root: Path, split: str) -> list[Path]:
    files = _find_split_files(info, root, split)
    if files is not None:
        return files
    why = "downloads disabled (NCANVAS_OFFLINE=1)"
    if os.environ.get(ENV_OFFLINE, "") not in ("1", "true", "yes"):
        try:
            _download(info, root)
            files = _find_split_files(info, root, split)
            if files is not None:
                return files
            why = "download finished but the files are missing"
        except Exception as e:  # noqa: BLE001 - network, SSL, disk: the user needs one line, not a traceback
            why = f"download failed: {type(e).__name__}"
    where = " or ".join(str(root / f) if f else str(root) for f in info.folders)
    names = ", ".join(info.files[split]) + (" (each optionally .gz)" if info.name != "cifar10" else "")
    raise NcanvasError(f"{info.name} {split} data not found: put {names} in {where} ({why}); "
                       f"or pass --data-dir")


def load_split(name: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> TensorData:
    """Read one split ("train" or "test") into CPU tensors: x (N, C, H, W) uint8, y (N,) int64."""
    info = get_info(name)
    files = _locate(info, resolve_data_dir(data_dir), split)
    if info.name == "cifar10":
        parts = [read_cifar_batch(p) for p in files]
        x = np.concatenate([p[0] for p in parts])
        y = np.concatenate([p[1] for p in parts])
    else:
        images, labels = read_idx(files[0]), read_idx(files[1])
        if images.ndim != 3 or images.shape[1:] != (info.image_size, info.image_size) or labels.ndim != 1:
            raise NcanvasError(f"{files[0]}: expected {info.image_size}x{info.image_size} images and a label list; "
                               f"got shapes {images.shape} and {labels.shape}")
        x = images[:, None]  # (N, 1, 28, 28)
        y = labels.astype(np.int64)
    if len(x) != len(y):
        raise NcanvasError(f"{info.name} {split}: {len(x)} images but {len(y)} labels")
    return TensorData(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))


def split_train_val(data: TensorData, val_fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """Deterministic split: the same (seed, fraction) always holds out the same samples."""
    n_val = int(round(len(data) * val_fraction))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[n_val:].sort().values), data.subset(perm[:n_val].sort().values)


# ---------------------------------------------------------------------------------------------- batches

def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 normalised with the dataset's mean/std."""
    mean = torch.tensor(info.mean, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - mean) / std


def denormalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Inverse of :func:`normalize`, in [0, 1] units (not clamped)."""
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return x * s + m


def augment_crop_flip(x: torch.Tensor, pad: int = 4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding plus random horizontal flip, per sample, on a whole uint8 batch."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
    dev = x.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev if generator is None else "cpu").to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=dev if generator is None else "cpu").to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B, 1, 1, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    out = padded[bi, ci, rows, cols]  # (B, C, H, W)
    flip = torch.rand(b, generator=generator, device=dev if generator is None else "cpu").to(dev) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


# ---------------------------------------------------------------------------------------------- samples

def parse_sample_spec(spec: str) -> tuple[str, str, int]:
    """``"mnist:123"`` (test split) or ``"mnist:train:123"`` -> (dataset, split, index)."""
    parts = spec.split(":")
    try:
        if len(parts) == 2:
            name, split, idx = parts[0], "test", int(parts[1])
        elif len(parts) == 3:
            name, split, idx = parts[0], parts[1], int(parts[2])
        else:
            raise ValueError(spec)
    except ValueError:
        raise NcanvasError(f"bad sample {spec!r}: use DATASET:INDEX or DATASET:SPLIT:INDEX, e.g. mnist:123") from None
    get_info(name)
    if split not in ("train", "test"):
        raise NcanvasError(f"bad sample {spec!r}: split must be train or test")
    return name, split, idx


def load_sample(spec: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, int, str]:
    """One dataset image by spec: (H, W, C) uint8 array, label index, class name."""
    name, split, idx = parse_sample_spec(spec)
    data = load_split(name, split, data_dir)
    if not 0 <= idx < len(data):
        raise NcanvasError(f"sample index {idx} out of range: {name} {split} has {len(data)} images")
    label = int(data.y[idx])
    return data.x[idx].permute(1, 2, 0).numpy().copy(), label, get_info(name).class_names[label]
