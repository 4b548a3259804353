"""NSL-KDD network-intrusion records as 64-value feature vectors (IIoT gateway task).

Dataset: Tavallaee, Bagheri, Lu, Ghorbani, "A Detailed Analysis of the KDD CUP 99 Data Set",
IEEE CISDA 2009 (Canadian Institute for Cybersecurity, University of New Brunswick).

Files are looked up, in order, in `$TINYFL_NSLKDD_DIR`, in `shared/datasets/nsl-kdd` beside the
project checkout, and in the download cache (`~/.cache/tinyfl/nsl-kdd`); `fetch()` downloads them
into the cache when a mirror is reachable. Every file is checked against its SHA-256 before use.

Feature vector (64 values in [0, 1]; statistics from the training file only): the 38 numeric
columns (log1p for counts and byte totals, then divided by the training maximum, clipped), one-hot
protocol (3), one-hot connection flag (11), and one-hot service for the 12 most frequent training
services (others all-zero). These fit the node's embedding cache directly, so a node can learn on
them without a backbone ("feature-vector mode").
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tinyfl.errors import DatasetError

TRAIN_FILE = "KDDTrain+_20Percent.txt"
TEST_FILE = "KDDTest+.txt"
SHA256 = {
    TRAIN_FILE: "1a1559ff163a1dfa7ad1fba6b00ac6a408cc16741588831b66f043b918881e53",
    TEST_FILE: "86b5ec03d20c040bdbeeb7eb68ae7df37e27a16c5b66a6ba2b62b8fed0e5cdfa",
}
# A public mirror of the dataset's files; override with TINYFL_NSLKDD_URL (a folder URL).
DEFAULT_MIRROR = "https://raw.githubusercontent.com/defcom17/NSL_KDD/master/"

CLASSES = ("normal", "DoS", "Probe", "R2L", "U2R")
ATTACK_CLASS = {
    **{a: "DoS" for a in ("apache2", "back", "land", "neptune", "mailbomb", "pod", "processtable",
                          "smurf", "teardrop", "udpstorm", "worm")},
    **{a: "Probe" for a in ("ipsweep", "mscan", "nmap", "portsweep", "saint", "satan")},
    **{a: "R2L" for a in ("ftp_write", "guess_passwd", "httptunnel", "imap", "multihop", "named",
                          "phf", "sendmail", "snmpgetattack", "snmpguess", "spy", "warezclient",
                          "warezmaster", "xlock", "xsnoop")},
    **{a: "U2R" for a in ("buffer_overflow", "loadmodule", "perl", "ps", "rootkit", "sqlattack",
                          "xterm")},
    "normal": "normal",
}
PROTOCOLS = ("tcp", "udp", "icmp")
FLAGS = ("SF", "S0", "REJ", "RSTR", "RSTO", "SH", "S1", "S2", "S3", "OTH", "RSTOS0")
N_TOP_SERVICES = 12
# Column indices (0-based) of the 41 features whose values are rates already in [0, 1].
RATE_COLUMNS = frozenset(range(24, 31)) | frozenset(range(33, 41))
CATEGORICAL_COLUMNS = (1, 2, 3)
FEATURE_DIM = 38 + len(PROTOCOLS) + len(FLAGS) + N_TOP_SERVICES  # 64
# How a node's embedding cache holds these features: [0, 1] -> int8 codes -128..127.
FEATURE_SCALE = 1.0 / 255.0
FEATURE_ZERO_POINT = -128
# The backbone's pretraining ("source") rows of TRAIN_FILE: the first round(SOURCE_SHARE * n) of a
# permutation from SPLIT_SEED (`source_mask`). They never reach a node, as HAR's source users.
SOURCE_SHARE = 0.2
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class Records:
    """Raw rows: numeric features (n, 38), categorical strings (n, 3), class ids (n,)."""

    numeric: npt.NDArray[np.float64]
    categorical: npt.NDArray[np.str_]
    labels: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FeatureSpec:
    """What the training file taught the feature encoder; the same spec encodes the test file."""

    numeric_max: npt.NDArray[np.float64]
    services: tuple[str, ...]

    def model_hash(self) -> bytes:
        """8-byte identity of this feature definition: what feature-mode nodes report as model."""
        h = hashlib.sha256(b"tinyfl nsl-kdd features v1\n")
        h.update(np.asarray(self.numeric_max, dtype="<f8").tobytes())
        h.update(",".join(self.services).encode())
        return h.digest()[:8]


def candidate_dirs() -> list[Path]:
    """Where the files may already be, most specific first."""
    dirs = []
    if os.environ.get("TINYFL_NSLKDD_DIR"):
        dirs.append(Path(os.environ["TINYFL_NSLKDD_DIR"]))
    for base in (Path.cwd(), Path(__file__).resolve()):
        for parent in (base, *base.parents):
            dirs.append(parent / ".." / "shared" / "datasets" / "nsl-kdd")
            dirs.append(parent / "shared" / "datasets" / "nsl-kdd")
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinyfl" / "nsl-kdd"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(name: str) -> Path:
    """Path of a verified copy of `name`, or DatasetError saying how to get one."""
    for d in candidate_dirs():
        path = d / name
        if path.is_file():
            if sha256_of(path) != SHA256[name]:
                raise DatasetError(f"{path} fails its SHA-256 check; delete it and fetch again")
            return path.resolve()
    raise DatasetError(
        f"NSL-KDD file {name} not found (looked in $TINYFL_NSLKDD_DIR, shared/datasets/nsl-kdd, "
        f"{cache_dir()}); run `python -m tinyfl.data.nslkdd` with network access to download it"
    )


def fetch(base_url: str | None = None) -> list[Path]:
    """Downloads both files into the cache (verified, written atomically); returns their paths."""
    base = base_url or os.environ.get("TINYFL_NSLKDD_URL", DEFAULT_MIRROR)
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, digest in SHA256.items():
        path = target / name
        if path.is_file() and sha256_of(path) == digest:
            paths.append(path)
            continue
        try:
            with urllib.request.urlopen(base + name, timeout=60) as response:
                data = response.read()
        except OSError as exc:
            raise DatasetError(f"cannot download {name} from {base}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != digest:
            raise DatasetError(f"downloaded {name} fails its SHA-256 check; nothing was saved")
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths.append(path)
    return paths


def parse(text: str) -> Records:
    """Parses the CSV text of an NSL-KDD file (41 features, attack name, difficulty)."""
    numeric, categorical, labels = [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split(",")
        if len(cols) != 43:
            raise DatasetError(f"line {lineno}: expected 43 columns, found {len(cols)}")
        attack = cols[41]
        if attack not in ATTACK_CLASS:
            raise DatasetError(f"line {lineno}: unknown attack name {attack!r}")
        try:
            numeric.append([float(cols[i]) for i in range(41) if i not in CATEGORICAL_COLUMNS])
        except ValueError as exc:
            raise DatasetError(f"line {lineno}: {exc}") from exc
        categorical.append([cols[i] for i in CATEGORICAL_COLUMNS])
        labels.append(CLASSES.index(ATTACK_CLASS[attack]))
    return Records(np.array(numeric), np.array(categorical), np.array(labels, dtype=np.uint8))


def load(name: str) -> Records:
    return parse(locate(name).read_text())


def numeric_transform(numeric: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """log1p on counts and byte totals (heavy-tailed), rates unchanged."""
    numeric_columns = [i for i in range(41) if i not in CATEGORICAL_COLUMNS]
    is_rate = np.array([c in RATE_COLUMNS for c in numeric_columns])
    out: npt.NDArray[np.float64] = np.where(is_rate, numeric, np.log1p(np.maximum(numeric, 0.0)))
    return out


def fit(train: Records) -> FeatureSpec:
    """Learns the encoder from training rows only."""
    transformed = numeric_transform(train.numeric)
    services, counts = np.unique(train.categorical[:, 1], return_counts=True)
    order = np.lexsort((services, -counts))  # most frequent first, ties by name
    return FeatureSpec(
        numeric_max=np.maximum(transformed.max(axis=0), 1e-12),
        services=tuple(str(s) for s in services[order][:N_TOP_SERVICES]),
    )


def encode(records: Records, spec: FeatureSpec) -> npt.NDArray[np.float32]:
    """Feature vectors (n, 64) in [0, 1]."""
    numeric = np.clip(numeric_transform(records.numeric) / spec.numeric_max, 0.0, 1.0)

    def one_hot(values: npt.NDArray[np.str_], vocab: tuple[str, ...]) -> npt.NDArray[np.float64]:
        hot: npt.NDArray[np.float64] = (values[:, None] == np.array(vocab)[None, :]).astype(np.float64)
        return hot

    parts = [
        numeric,
        one_hot(records.categorical[:, 0], PROTOCOLS),
        one_hot(records.categorical[:, 2], FLAGS),
        one_hot(records.categorical[:, 1], spec.services),
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)


def source_mask(n: int) -> npt.NDArray[np.bool_]:
    """Rows of TRAIN_FILE (n rows) that pretrain the NSL-KDD backbone (True) and are therefore not
    the fleet's: the first round(SOURCE_SHARE * n) of a permutation from SPLIT_SEED, which is
    fixed (not the build seed) so `tinyfl model build` and `tinyfl data partition` agree."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    mask = np.zeros(n, dtype=bool)
    mask[order[: round(SOURCE_SHARE * n)]] = True
    return mask


def quantize_features(features: npt.NDArray[np.float32]) -> npt.NDArray[np.int8]:
    """Feature vectors as the node stores them (FEATURE_SCALE, FEATURE_ZERO_POINT)."""
    codes = np.clip(np.round(features / FEATURE_SCALE) + FEATURE_ZERO_POINT, -128, 127)
    out: npt.NDArray[np.int8] = codes.astype(np.int8)
    return out


if __name__ == "__main__":
    for p in fetch():
        print(p)
