"""MNIST and Fashion-MNIST: IDX files, checksums, the local cache and the download.

The four files of each data set are IDX files (LeCun's format: a 4-byte magic number,
one big-endian uint32 per dimension, then the data), usually gzipped. Every file is
verified by the MD5 of its *uncompressed* bytes, so the official ``.gz`` files, other
compressions of the same bytes (``.bz2``, ``.xz``) and the plain files are all accepted.

Where a loader looks, in this order (the first that applies is the only place used):

1. the ``path`` argument;
2. the environment variable (``FASTNN_DATA`` for MNIST, ``FASTNN_FASHION_DATA`` for
   Fashion-MNIST);
3. the user cache, ``$XDG_CACHE_HOME/fastnn/<dataset>`` or ``~/.cache/fastnn/<dataset>``.

In that folder each file may be present as ``NAME``, ``NAME.gz``, ``NAME.bz2`` or
``NAME.xz``. Files that are missing are downloaded into that same folder (unless
``download=False``) from the mirrors, tried in turn. A download goes to a temporary
file in the folder and is renamed to its final name only after its checksum has been
verified, so an interrupted or corrupt download never leaves a file that looks whole.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tempfile
import urllib.error
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DatasetError",
    "FASHION_MNIST_CHECKSUMS",
    "FASHION_MNIST_MIRRORS",
    "MNIST_CHECKSUMS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "cache_dir",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "read_idx",
    "write_idx",
]

PathLike = str | os.PathLike[str]
Split = tuple[np.ndarray, np.ndarray]


class DatasetError(ValueError):
    """A data file is missing, truncated, corrupt, or fails its checksum.

    The message names the file (or URL) and says what is wrong with it.
    """


# --------------------------------------------------------------------------------------
# The data sets
# --------------------------------------------------------------------------------------

#: Names of the four IDX files (uncompressed), shared by MNIST and Fashion-MNIST.
MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: MD5 of the *uncompressed* bytes of each MNIST file.
MNIST_CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

#: Base URLs that serve ``NAME.gz`` for each MNIST file, tried in turn.
MNIST_MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: MD5 of the *uncompressed* bytes of each Fashion-MNIST file.
FASHION_MNIST_CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

#: Base URLs that serve ``NAME.gz`` for each Fashion-MNIST file, tried in turn.
FASHION_MNIST_MIRRORS: list[str] = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]

_MNIST_TRAIN_SIZE = 60_000
_DOWNLOAD_SUFFIX = ".gz"  # what the mirrors serve
_LOCAL_SUFFIXES = ("", ".gz", ".bz2", ".xz")  # what a folder may hold
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------

# IDX type code -> dtype of the stored (big-endian) values.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (kind, itemsize) of a native dtype -> IDX type code.
_IDX_CODES: dict[tuple[str, int], int] = {
    (dtype.kind, dtype.itemsize): code for code, dtype in _IDX_DTYPES.items()
}

_CompressionError = (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError)
_COMPRESSIONS: tuple[tuple[bytes, str, Callable[[bytes], bytes]], ...] = (
    (b"\x1f\x8b", "gzip", gzip.decompress),
    (b"BZh", "bzip2", bz2.decompress),
    (b"\xfd7zXZ\x00", "xz", lzma.decompress),
)


def _decompress(raw: bytes, source: object) -> bytes:
    """Return `raw` decompressed if it starts with a gzip, bzip2 or xz magic number."""
    for magic, kind, decompress in _COMPRESSIONS:
        if raw.startswith(magic):
            try:
                return decompress(raw)
            except _CompressionError as exc:
                raise DatasetError(
                    f"{source}: corrupt or truncated {kind} stream ({exc})"
                ) from None
    return raw


def _parse_idx(data: bytes, source: object) -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a native-endian array."""
    if len(data) < 4:
        raise DatasetError(
            f"{source}: too short to be an IDX file ({len(data)} bytes; "
            "the magic number alone takes 4)"
        )
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{source}: bad magic number 0x{data[:4].hex()}: not an IDX file "
            "(an IDX file starts with two zero bytes; is it compressed in a format "
            "other than gzip, bzip2 or xz?)"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise DatasetError(
            f"{source}: bad magic number 0x{data[:4].hex()}: unknown IDX type code "
            f"0x{code:02X} (known: {known})"
        )
    if ndim == 0:
        raise DatasetError(f"{source}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{source}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    count = prod(shape)
    expected = count * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DatasetError(
            f"{source}: truncated IDX file: shape {shape} of {dtype.name} needs "
            f"{expected} data bytes after the header, only {found} present"
        )
    if found > expected:
        raise DatasetError(
            f"{source}: {found - expected} trailing bytes after the IDX data "
            f"(shape {shape} of {dtype.name} needs {expected} bytes, found {found})"
        )
    native = dtype.newbyteorder("=")
    if count == 0:
        return np.zeros(shape, dtype=native)
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header)
    return array.astype(native).reshape(shape)  # a writable native-endian copy


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file, compressed or not.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip, bzip2 and xz compression are recognised by their magic bytes,
        whatever the file is called.

    Returns
    -------
    numpy.ndarray
        A writable, C-contiguous, native-endian array with the file's shape and type:
        uint8, int8, int16, int32, float32 or float64.

    Raises
    ------
    DatasetError
        If the file is not a valid IDX file: bad magic number or type code, a header
        or payload shorter than the dimensions require, trailing bytes, or a corrupt or
        truncated compressed stream. The message names the file.
    OSError
        If the file cannot be read.

    See Also
    --------
    write_idx : the inverse.

    Examples
    --------
    >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    >>> images.shape, images.dtype  # doctest: +SKIP
    ((60000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    return _parse_idx(_decompress(path.read_bytes(), path), path)


def write_idx(path: PathLike, array: Any) -> None:
    """Write an array as an IDX file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (or overwrite). It is gzipped if its name ends in ``.gz``,
        compressed with bzip2 for ``.bz2`` and with xz for ``.xz``; otherwise plain.
    array : array_like
        At least one dimension, each below 2**32; dtype uint8, int8, int16, int32,
        float32 or float64 (stored big-endian, as the format requires).

    Raises
    ------
    TypeError
        If `array` has a dtype that IDX cannot store.
    ValueError
        If `array` is 0-dimensional or a dimension is too large.

    See Also
    --------
    read_idx : the inverse.
    """
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(
            f"array: IDX cannot store dtype {array.dtype}; use uint8, int8, int16, "
            "int32, float32 or float64"
        )
    if array.ndim == 0:
        raise ValueError("array: IDX needs at least one dimension, got a 0-d array")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array: dimension too large for IDX in shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    data = header + payload
    suffix = Path(path).suffix.lower()
    if suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif suffix == ".bz2":
        data = bz2.compress(data)
    elif suffix == ".xz":
        data = lzma.compress(data)
    Path(path).write_bytes(data)


# --------------------------------------------------------------------------------------
# Finding, verifying and downloading files
# --------------------------------------------------------------------------------------


def cache_dir(dataset: str = "mnist") -> Path:
    """Return the folder where a data set is cached.

    Parameters
    ----------
    dataset : str, default "mnist"
        The subfolder, e.g. ``"mnist"`` or ``"fashion-mnist"``.

    Returns
    -------
    pathlib.Path
        ``$XDG_CACHE_HOME/fastnn/<dataset>`` when ``XDG_CACHE_HOME`` is set to an
        absolute path, else ``~/.cache/fastnn/<dataset>``. It may not exist yet.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "fastnn" / dataset


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _verified(raw: bytes, source: object, md5: str) -> bytes:
    """Decompress `raw` and check the MD5 of the result; return the uncompressed bytes."""
    data = _decompress(raw, source)
    actual = _md5(data)
    if actual != md5.lower():
        raise DatasetError(
            f"{source}: checksum mismatch: the MD5 of the uncompressed bytes is "
            f"{actual}, expected {md5.lower()} (a wrong, truncated or corrupt file)"
        )
    return data


def _find(folder: Path, name: str) -> Path | None:
    for suffix in _LOCAL_SUFFIXES:
        candidate = folder / (name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _suffix_for(raw: bytes) -> str:
    """The file-name suffix that matches the compression of `raw`."""
    for (magic, _, _), suffix in zip(_COMPRESSIONS, (".gz", ".bz2", ".xz")):
        if raw.startswith(magic):
            return suffix
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _fetch_to(url: str, out: Any, timeout: float) -> bytes:
    """Stream `url` into the open binary file `out`; return the bytes received."""
    import urllib.request   # here, not at import: with http.client, ~40-50 ms of it
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    chunks = []
    with urllib.request.urlopen(request, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            chunks.append(chunk)
    raw = b"".join(chunks)
    if length is not None and length.isdigit() and len(raw) != int(length):
        raise DatasetError(
            f"{url}: incomplete download: received {len(raw)} of {int(length)} bytes"
        )
    return raw


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the server could not be reached at all (vs. an HTTP error)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, TimeoutError | ConnectionError)


def _download(
    name: str,
    md5: str,
    folder: Path,
    mirrors: Sequence[str],
    timeout: float,
    failures: list[str],
    unreachable: set[str],
) -> bytes | None:
    """Download `name` from the first mirror that serves a good copy into `folder`.

    Each attempt streams into a temporary file in `folder`; a copy that fails its
    checksum is deleted and the next mirror is tried. A good copy is renamed to
    ``NAME.gz`` (or the suffix of its actual compression). Returns the uncompressed
    bytes, or None after appending one line per failed attempt to `failures`.
    Mirrors in `unreachable` are skipped; a mirror that cannot be reached is added.
    """
    import http.client
    for mirror in mirrors:
        if mirror in unreachable:
            continue
        url = mirror.rstrip("/") + "/" + name + _DOWNLOAD_SUFFIX
        try:
            tmp = tempfile.NamedTemporaryFile(
                dir=folder, prefix=f".{name}.", suffix=".part", delete=False
            )
        except OSError as exc:
            failures.append(f"cannot write into {folder}: {_describe(exc)}")
            return None
        tmp_path = Path(tmp.name)
        try:
            with tmp:
                raw = _fetch_to(url, tmp, timeout)
            data = _verified(raw, url, md5)
            os.replace(tmp_path, folder / (name + _suffix_for(raw)))
            return data
        except DatasetError as exc:
            failures.append(str(exc))
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {_describe(exc)}")
            if _unreachable(exc):
                unreachable.add(mirror)
        finally:
            tmp_path.unlink(missing_ok=True)
    return None


def _resolve_folder(
    path: PathLike | None, env_var: str | None, cache_subdir: str
) -> tuple[Path, str]:
    """The folder to use and a phrase saying where it came from."""
    if path is not None:
        return Path(path).expanduser(), "the path argument"
    if env_var and os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"${env_var}"
    unset = f"; ${env_var} is not set" if env_var else ""
    return cache_dir(cache_subdir), f"the cache folder{unset}"


def _missing_message(
    name: str,
    files: Sequence[str],
    missing: Sequence[str],
    folder: Path,
    origin: str,
    env_var: str | None,
    mirrors: Sequence[str],
    download: bool,
    failures: Sequence[str],
    unreachable: set[str],
    cache: Path,
) -> str:
    forms = "NAME, " + ", ".join(f"NAME{s}" for s in _LOCAL_SUFFIXES[1:-1])
    lines = [
        f"{name}: {len(missing)} of {len(files)} files missing: {', '.join(missing)}.",
        f"Looked in {folder} ({origin}), for each file as {forms} "
        f"or NAME{_LOCAL_SUFFIXES[-1]}.",
    ]
    if not download:
        lines.append("Did not download them (download=False).")
    elif not mirrors:
        lines.append("Could not download them: no mirrors configured.")
    else:
        lines.append("Downloading failed:")
        lines += [f"  {failure}" for failure in failures]
        if unreachable:
            lines.append("  (a mirror that could not be reached was not asked again)")
    if mirrors:
        lines.append(
            "To provide them, download NAME.gz for each missing file on a machine "
            "with internet access, from any of:"
        )
        lines += [f"  {m.rstrip('/')}/" for m in mirrors]
        lines.append("and either")
    else:
        lines.append("To provide them, either")
    if env_var:
        lines.append(f"  - set {env_var} to the folder that holds them, or")
    lines += [
        "  - pass path=FOLDER, or",
        f"  - put them into the cache folder {cache}",
        "The official .gz files and their uncompressed contents are both accepted; "
        "each is checked against the MD5 of its uncompressed bytes.",
    ]
    return "\n".join(lines)


def load_idx_dataset(
    name: str,
    files: Sequence[str],
    checksums: Mapping[str, str],
    *,
    mirrors: Sequence[str] = (),
    path: PathLike | None = None,
    env_var: str | None = None,
    cache_subdir: str | None = None,
    download: bool = True,
    timeout: float = 30.0,
) -> dict[str, np.ndarray]:
    """Find, verify (downloading if needed) and read a set of IDX files.

    This is the machinery behind `load_mnist` and `load_fashion_mnist`; use it for
    other data sets published as IDX files, or to load files with other checksums.

    Parameters
    ----------
    name : str
        The data set's name, used in messages (and, lower-cased, as the default
        cache subfolder).
    files : sequence of str
        The file names, uncompressed (e.g. ``"train-labels-idx1-ubyte"``).
    checksums : mapping of str to str
        The MD5 (hex) of the uncompressed bytes of every file in `files`.
    mirrors : sequence of str, default ()
        Base URLs tried in turn for a missing file; ``MIRROR/NAME.gz`` is fetched.
    path : str or os.PathLike, optional
        The folder that holds (or receives) the files. Default: ``$env_var`` if set,
        else ``cache_dir(cache_subdir)``.
    env_var : str, optional
        Environment variable naming the folder when `path` is None.
    cache_subdir : str, optional
        Subfolder of the fastnn cache; default ``name.lower()``.
    download : bool, default True
        Whether to download missing files into the folder.
    timeout : float, default 30.0
        Seconds to wait for each network operation.

    Returns
    -------
    dict of str to numpy.ndarray
        Each file's contents (see `read_idx`), keyed by file name, in `files` order.

    Raises
    ------
    DatasetError
        If a file is corrupt or fails its checksum, or is missing and could not be
        downloaded; the message says which files are missing, where they were looked
        for, which URLs were tried and how to provide the files.
    ValueError
        If `checksums` lacks an entry for one of `files`.

    Notes
    -----
    Only one folder is used: `path`, else ``$env_var``, else the cache. A local file
    that fails its checksum is an error and is left alone (delete it yourself); a
    downloaded copy that fails is deleted at once and the next mirror is tried.
    """
    unknown = [f for f in files if f not in checksums]
    if unknown:
        raise ValueError(f"checksums: no MD5 given for {', '.join(unknown)}")
    cache = cache_dir(cache_subdir or name.lower())
    folder, origin = _resolve_folder(path, env_var, cache_subdir or name.lower())

    contents: dict[str, tuple[bytes, Path]] = {}  # uncompressed bytes, source
    missing: list[str] = []
    for file in files:
        found = _find(folder, file)
        if found is None:
            missing.append(file)
        else:
            contents[file] = _verified(found.read_bytes(), found, checksums[file]), found

    failures: list[str] = []
    unreachable: set[str] = set()
    if missing and download and mirrors:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            failures.append(f"cannot create {folder}: {_describe(exc)}")
        else:
            for file in missing:
                data = _download(
                    file, checksums[file], folder, mirrors, timeout, failures, unreachable
                )
                if data is not None:
                    contents[file] = data, folder / file
        missing = [f for f in missing if f not in contents]
    if missing:
        raise DatasetError(
            _missing_message(
                name, files, missing, folder, origin, env_var, mirrors, download,
                failures, unreachable, cache,
            )
        )
    return {file: _parse_idx(*contents.pop(file)) for file in files}


# --------------------------------------------------------------------------------------
# MNIST-like loaders
# --------------------------------------------------------------------------------------


def _check_validation(validation: Any) -> int:
    if isinstance(validation, bool) or not isinstance(validation, int | np.integer):
        raise TypeError(
            f"validation must be an integer, got {type(validation).__name__}"
        )
    if not 0 <= validation < _MNIST_TRAIN_SIZE:
        raise ValueError(
            f"validation must be in 0..{_MNIST_TRAIN_SIZE - 1}, got {validation}"
        )
    return int(validation)


def _check_float_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(
            f"dtype must be 'float32' or 'float64', got {dtype!r}"
        ) from None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def _images_and_labels(
    arrays: Mapping[str, np.ndarray], prefix: str, dtype: np.dtype
) -> Split:
    """Flatten and scale the images, widen the labels, check they match."""
    images = arrays[f"{prefix}-images-idx3-ubyte"]
    labels = arrays[f"{prefix}-labels-idx1-ubyte"]
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"{prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte do not match: "
            f"images of shape {images.shape}, labels of shape {labels.shape} "
            "(expected (n, rows, cols) and (n,))"
        )
    flat = images.reshape(len(images), -1)
    X = np.empty(flat.shape, dtype)
    # x / 255 in `dtype` (the same bits as astype, then /=), in one pass, the rows in two
    # halves on two threads (numpy's loops let go of the GIL). 60,000 x 784 uint8, first
    # call in a fresh process, five each (a script outside the repository): 0.09-0.41 s
    # the old way, 0.06-0.16 s this way.
    half = len(flat) // 2
    with ThreadPoolExecutor(2) as pool:
        for part in [pool.submit(np.divide, flat[rows], dtype.type(255), out=X[rows],
                                 dtype=dtype)
                     for rows in (slice(0, half), slice(half, None))]:
            part.result()
    return X, labels.astype(np.int64)


def _load_mnist_like(
    name: str,
    checksums: Mapping[str, str],
    mirrors: Sequence[str],
    *,
    env_var: str,
    cache_subdir: str,
    path: PathLike | None,
    validation: Any,
    dtype: Any,
    download: bool,
    timeout: float,
) -> tuple[Split, Split, Split]:
    """Check the arguments, load the four files, and split them."""
    validation = _check_validation(validation)
    resolved = _check_float_dtype(dtype)
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(
            load_idx_dataset,
            name,
            MNIST_FILES,
            checksums,
            mirrors=mirrors,
            path=path,
            env_var=env_var,
            cache_subdir=cache_subdir,
            download=download,
            timeout=timeout,
        )
        # Meanwhile, on this thread, which would only wait: the first kernel of `fit`,
        # and with it Numba's one-off start-up (kernels.train.preload). A warm start
        # (import, load_mnist, one epoch of config B; six fresh processes each,
        # alternated with the loader before this; a script outside the repository) took
        # 2.09-2.69 s, median 2.3 s, against 2.38-3.12 s, median 2.7 s.
        from fastnn.kernels.train import preload

        preload(resolved)
        arrays = reading.result()
    X, y = _images_and_labels(arrays, "train", resolved)
    X_test, y_test = _images_and_labels(arrays, "t10k", resolved)
    n = len(X)
    if validation >= n:
        raise ValueError(
            f"validation must be smaller than the {n} training images, got {validation}"
        )
    cut = n - validation
    return (X[:cut], y[:cut]), (X[cut:], y[cut:]), (X_test, y_test)


def load_mnist(
    path: PathLike | None = None,
    *,
    validation: int = 10_000,
    dtype: Any = "float32",
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> tuple[Split, Split, Split]:
    """Load MNIST, the handwritten digits, split into training, validation and test.

    The four IDX files are read from `path`, else ``$FASTNN_DATA``, else the cache
    folder, and downloaded into that folder if missing. Each is verified by the MD5
    of its uncompressed bytes (`MNIST_CHECKSUMS`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The folder that holds the four files, each as ``NAME`` or ``NAME.gz`` (or
        ``.bz2``, ``.xz``). Missing files are downloaded into it if `download`.
        Default: ``$FASTNN_DATA`` if set, else the cache folder
        (``$XDG_CACHE_HOME/fastnn/mnist`` or ``~/.cache/fastnn/mnist``).
    validation : int, default 10000
        How many of the 60,000 training images to hold out for validation: the
        *last* ones (Nielsen's 50,000/10,000 split). 0 keeps all 60,000 for
        training and returns empty validation arrays of shapes (0, 784) and (0,).
    dtype : {"float32", "float64"}, default "float32"
        dtype of the images.
    download : bool, default True
        Whether to download missing files from the mirrors.
    mirrors : sequence of str, optional
        Base URLs to download ``NAME.gz`` from, tried in turn; default
        `MNIST_MIRRORS`.
    timeout : float, default 30.0
        Seconds to wait for each network operation.

    Returns
    -------
    (X_train, y_train), (X_val, y_val), (X_test, y_test)
        Images as C-contiguous arrays of shape (n, 784) in `dtype`, pixels scaled
        to [0, 1]; labels as int64 arrays of shape (n,) with values 0..9.
        `X_train` and `X_val` are views into one array.

    Raises
    ------
    DatasetError
        If a file is corrupt or fails its MD5 check, or is missing and could not
        be downloaded (the message says where the files were looked for, which
        URLs were tried, and how to provide the files).
    TypeError
        If `validation` is not an integer or `dtype` is not a dtype.
    ValueError
        If `validation` is outside 0..59999 or `dtype` is not float32 or float64.

    See Also
    --------
    load_fashion_mnist : the same for Fashion-MNIST.
    load_idx_dataset : the machinery underneath.

    Examples
    --------
    >>> (X, y), (X_val, y_val), (X_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:3]  # doctest: +SKIP
    ((50000, 784), dtype('float32'), array([5, 0, 4]))
    """
    return _load_mnist_like(
        "MNIST",
        MNIST_CHECKSUMS,
        MNIST_MIRRORS if mirrors is None else mirrors,
        env_var="FASTNN_DATA",
        cache_subdir="mnist",
        path=path,
        validation=validation,
        dtype=dtype,
        download=download,
        timeout=timeout,
    )


def load_fashion_mnist(
    path: PathLike | None = None,
    *,
    validation: int = 10_000,
    dtype: Any = "float32",
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> tuple[Split, Split, Split]:
    """Load Fashion-MNIST (Zalando's article images), split like `load_mnist`.

    The four IDX files are read from `path`, else ``$FASTNN_FASHION_DATA``, else the
    cache folder, and downloaded into that folder if missing. Each is verified by
    the MD5 of its uncompressed bytes (`FASHION_MNIST_CHECKSUMS`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        The folder that holds the four files, each as ``NAME`` or ``NAME.gz`` (or
        ``.bz2``, ``.xz``). Missing files are downloaded into it if `download`.
        Default: ``$FASTNN_FASHION_DATA`` if set, else the cache folder
        (``$XDG_CACHE_HOME/fastnn/fashion-mnist`` or
        ``~/.cache/fastnn/fashion-mnist``).
    validation : int, default 10000
        How many of the 60,000 training images to hold out for validation: the
        *last* ones. 0 keeps all 60,000 for training and returns empty validation
        arrays of shapes (0, 784) and (0,).
    dtype : {"float32", "float64"}, default "float32"
        dtype of the images.
    download : bool, default True
        Whether to download missing files from the mirrors.
    mirrors : sequence of str, optional
        Base URLs to download ``NAME.gz`` from, tried in turn; default
        `FASHION_MNIST_MIRRORS`.
    timeout : float, default 30.0
        Seconds to wait for each network operation.

    Returns
    -------
    (X_train, y_train), (X_val, y_val), (X_test, y_test)
        Images as C-contiguous arrays of shape (n, 784) in `dtype`, pixels scaled
        to [0, 1]; labels as int64 arrays of shape (n,) with values 0..9:
        0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
        7 Sneaker, 8 Bag, 9 Ankle boot.

    Raises
    ------
    DatasetError
        If a file is corrupt or fails its MD5 check, or is missing and could not
        be downloaded (the message says where the files were looked for, which
        URLs were tried, and how to provide the files).
    TypeError
        If `validation` is not an integer or `dtype` is not a dtype.
    ValueError
        If `validation` is outside 0..59999 or `dtype` is not float32 or float64.

    Notes
    -----
    Debian's package ``dataset-fashion-mnist`` installs the four ``.gz`` files in
    ``/usr/share/datasets/fashion-mnist``: point `path` or ``FASTNN_FASHION_DATA``
    there.
    """
    return _load_mnist_like(
        "Fashion-MNIST",
        FASHION_MNIST_CHECKSUMS,
        FASHION_MNIST_MIRRORS if mirrors is None else mirrors,
        env_var="FASTNN_FASHION_DATA",
        cache_subdir="fashion-mnist",
        path=path,
        validation=validation,
        dtype=dtype,
        download=download,
        timeout=timeout,
    )
