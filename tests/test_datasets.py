"""Tests of fastnn.datasets: IDX files, the MNIST loaders and downloader, synthetic
problems and preprocessing.

The downloader is tested against a real HTTP server on 127.0.0.1 started by the tests,
serving small IDX files they make. The real data sets are loaded as a user would: from
$FASTNN_DATA (MNIST) and $FASTNN_FASHION_DATA (Fashion-MNIST, e.g. the copy installed by
Debian's package dataset-fashion-mnist in /usr/share/datasets/fashion-mnist), else the
cache, else downloaded; with neither the tests fail with the loader's message, never skip.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn.datasets import (
    FASHION_MNIST_CHECKSUMS,
    MNIST_CHECKSUMS,
    MNIST_FILES,
    PCA,
    DatasetError,
    Standardizer,
    cache_dir,
    gaussian_clouds,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    one_hot,
    pca,
    read_idx,
    spirals,
    standardize,
    whiten,
    write_idx,
    xor,
)
from fastnn.datasets import mnist as mnist_module

IDX_DTYPES = ["uint8", "int8", ">i2", ">i4", ">f4", ">f8"]
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = MNIST_FILES


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Build an IDX file by hand (independently of write_idx)."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    code = codes[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_mnist_like(seed: int = 0, n_train: int = 12, n_test: int = 5, side: int = 4):
    """Small MNIST-shaped data: {file name: uncompressed IDX bytes}, and the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    return {name: idx_bytes(a) for name, a in arrays.items()}, arrays


def checksums_of(files: dict[str, bytes]) -> dict[str, str]:
    return {name: md5(data) for name, data in files.items()}


def write_folder(folder: Path, files: dict[str, bytes], suffix: str = ".gz") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    compress = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress,
                ".xz": lzma.compress}[suffix]
    for name, data in files.items():
        (folder / (name + suffix)).write_bytes(compress(data))


def use_checksums(monkeypatch, table: dict[str, str], files: dict[str, bytes]) -> None:
    for name, digest in checksums_of(files).items():
        monkeypatch.setitem(table, name, digest)


class MirrorServer:
    """A real HTTP server on 127.0.0.1 that serves bytes by path and logs requests.

    A route's value is either the body, or ``(body, claimed_length)`` to send a
    Content-Length larger than the body and then close the connection.
    """

    def __init__(self) -> None:
        self.routes: dict[str, bytes | tuple[bytes, int]] = {}
        self.requests: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                with lock:
                    outer.requests.append(self.path)
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404, "File not found")
                    return
                body, length = route if isinstance(route, tuple) else (route, len(route))
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def url(self, mirror: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mirror}/"

    def serve(self, mirror: str, files: dict[str, bytes], compress=gzip.compress) -> None:
        for name, data in files.items():
            self.routes[f"/{mirror}/{name}.gz"] = compress(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[MirrorServer]:
    srv = MirrorServer()
    try:
        yield srv
    finally:
        srv.close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> None:
    """Never touch the user's cache, and never contact a public mirror."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", [])
    monkeypatch.setattr(mnist_module, "FASHION_MNIST_MIRRORS", [])


@pytest.fixture
def no_data_env(monkeypatch) -> None:
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.delenv("FASTNN_FASHION_DATA", raising=False)


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# --------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------


def test_write_idx_writes_the_idx_format(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, np.array([[1, -2, 3], [256, 0, -32768]], dtype=np.int16))
    assert path.read_bytes() == (
        b"\x00\x00\x0b\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03"
        + b"\x00\x01\xff\xfe\x00\x03\x01\x00\x00\x00\x80\x00"
    )


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (0, 5)])
@pytest.mark.parametrize("dtype", IDX_DTYPES)
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        values = rng.integers(info.min, info.max, size=shape, endpoint=True)
    else:
        values = rng.normal(scale=1e3, size=shape)
    array = values.astype(np.dtype(dtype).newbyteorder("="))
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.dtype.isnative
    assert back.shape == shape
    assert back.flags.c_contiguous and back.flags.writeable
    np.testing.assert_array_equal(back, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.dtype(d).newbyteorder("=") for d in IDX_DTYPES]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
)
def test_idx_round_trip_property(tmp_path, array, gz):
    path = tmp_path / ("prop.gz" if gz else "prop")
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype
    assert back.tobytes() == array.tobytes()  # bit-exact, NaNs and -0.0 included


def test_compression_is_detected_by_magic_bytes_not_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    (tmp_path / "really-gzip.idx").write_bytes(gzip.compress(idx_bytes(array)))
    (tmp_path / "really-plain.gz").write_bytes(idx_bytes(array))
    (tmp_path / "really-xz").write_bytes(lzma.compress(idx_bytes(array)))
    for name in ("really-gzip.idx", "really-plain.gz", "really-xz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)


GOOD = idx_bytes(np.arange(24, dtype=np.int32).reshape(2, 3, 4))
CORRUPT_FILES = {
    "empty": (b"", "too short"),
    "bad magic": (b"\x01\x00" + GOOD[2:], "bad magic"),
    "gzip-like but not gzip": (b"\x1f\x00" + GOOD[2:], "bad magic"),
    "unknown type code": (GOOD[:2] + b"\x0a" + GOOD[3:], "type code"),
    "zero dimensions": (b"\x00\x00\x08\x00", "0 dimensions"),
    "truncated header": (GOOD[:10], "truncated IDX header"),
    "truncated payload": (GOOD[:-1], "truncated IDX file"),
    "payload missing": (GOOD[:16], "truncated IDX file"),
    "truncated payload in gzip": (gzip.compress(GOOD[:-4]), "truncated IDX file"),
    "trailing bytes": (GOOD + b"\x00", "1 trailing bytes"),
    "trailing bytes in gzip": (gzip.compress(GOOD + b"abc"), "3 trailing bytes"),
    "truncated gzip stream": (gzip.compress(GOOD)[:-6], "gzip stream"),
    "gzip with garbage after it": (gzip.compress(GOOD) + b"xyz", "gzip stream"),
    "gzip with bad crc": (
        gzip.compress(GOOD)[:-8] + b"\x00\x00\x00\x00" + gzip.compress(GOOD)[-4:],
        "gzip stream",
    ),
    "truncated bzip2 stream": (bz2.compress(GOOD)[:-5], "bzip2 stream"),
    "truncated xz stream": (lzma.compress(GOOD)[:-5], "xz stream"),
}


@pytest.mark.parametrize("case", CORRUPT_FILES, ids=list(CORRUPT_FILES))
def test_read_idx_rejects_corrupt_files(tmp_path, case):
    data, problem = CORRUPT_FILES[case]
    path = tmp_path / "broken-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_the_good_file_of_the_corruption_cases_reads(tmp_path):
    (tmp_path / "good").write_bytes(GOOD)
    np.testing.assert_array_equal(read_idx(tmp_path / "good"), np.arange(24).reshape(2, 3, 4))


def test_read_idx_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize(
    "array, error",
    [
        (np.arange(3, dtype=np.int64), TypeError),
        (np.zeros(3, dtype=bool), TypeError),
        (np.zeros(3, dtype=np.complex128), TypeError),
        (np.float32(1.0), ValueError),
    ],
)
def test_write_idx_rejects_what_idx_cannot_store(tmp_path, array, error):
    with pytest.raises(error, match="array"):
        write_idx(tmp_path / "x.idx", array)
    assert not (tmp_path / "x.idx").exists()


# --------------------------------------------------------------------------------------
# Loading from a folder
# --------------------------------------------------------------------------------------


def test_load_idx_dataset_accepts_any_compression_per_file(tmp_path, server):
    files, arrays = make_mnist_like()
    folder = tmp_path / "data"
    folder.mkdir()
    for (name, data), suffix in zip(files.items(), ["", ".gz", ".bz2", ".xz"]):
        write_folder(folder, {name: data}, suffix)
    loaded = load_idx_dataset(
        "Test", MNIST_FILES, checksums_of(files), path=folder, mirrors=[server.url("m")]
    )
    assert list(loaded) == list(MNIST_FILES)
    for name in MNIST_FILES:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert server.requests == []


def test_local_file_failing_its_checksum_is_an_error_and_is_kept(tmp_path, server):
    files, _ = make_mnist_like()
    folder = tmp_path / "data"
    write_folder(folder, files)
    sums = checksums_of(files) | {TRAIN_LABELS: "0" * 32}
    with pytest.raises(DatasetError, match="checksum mismatch") as info:
        load_idx_dataset("Test", MNIST_FILES, sums, path=folder, mirrors=[server.url("m")])
    message = str(info.value)
    assert str(folder / f"{TRAIN_LABELS}.gz") in message
    assert md5(files[TRAIN_LABELS]) in message and "0" * 32 in message
    assert (folder / f"{TRAIN_LABELS}.gz").exists()
    assert server.requests == []


def test_load_idx_dataset_needs_a_checksum_for_every_file(tmp_path):
    with pytest.raises(ValueError, match="checksums"):
        load_idx_dataset("Test", MNIST_FILES, {TRAIN_IMAGES: "0" * 32}, path=tmp_path)


def test_valid_checksum_but_not_idx_is_reported_with_its_file(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "odd.gz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(DatasetError, match="bad magic") as info:
        load_idx_dataset("Test", ["odd"], {"odd": md5(b"hello")}, path=folder)
    assert str(folder / "odd.gz") in str(info.value)


def test_load_mnist_splits_small_files(tmp_path, monkeypatch, no_data_env):
    files, arrays = make_mnist_like(n_train=12, n_test=5)
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    write_folder(tmp_path / "data", files)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))

    (X, y), (Xv, yv), (Xt, yt) = load_mnist(validation=3, download=False)
    images = arrays[TRAIN_IMAGES].reshape(12, 16) / 255.0
    assert X.shape == (9, 16) and Xv.shape == (3, 16) and Xt.shape == (5, 16)
    assert X.dtype == Xv.dtype == Xt.dtype == np.float32
    assert y.dtype == yv.dtype == yt.dtype == np.int64
    assert X.flags.c_contiguous and Xv.flags.c_contiguous and Xt.flags.c_contiguous
    np.testing.assert_allclose(X, images[:9], rtol=1e-7)
    np.testing.assert_allclose(Xv, images[9:], rtol=1e-7)  # the LAST images
    np.testing.assert_allclose(Xt, arrays[TEST_IMAGES].reshape(5, 16) / 255.0, rtol=1e-7)
    np.testing.assert_array_equal(np.concatenate([y, yv]), arrays[TRAIN_LABELS])
    np.testing.assert_array_equal(yt, arrays[TEST_LABELS])
    # bitwise x / 255 in float32, in both halves of the rows (12 and 5: even and odd)
    for got, raw in ((np.concatenate([X, Xv]), arrays[TRAIN_IMAGES]),
                     (Xt, arrays[TEST_IMAGES])):
        want = raw.reshape(len(raw), -1).astype(np.float32) / np.float32(255)
        assert got.tobytes() == want.tobytes()

    (X, y), (Xv, yv), _ = load_mnist(validation=0, dtype="float64")
    assert X.shape == (12, 16) and X.dtype == np.float64
    assert Xv.shape == (0, 16) and yv.shape == (0,) and yv.dtype == np.int64
    np.testing.assert_array_equal(X, images)

    with pytest.raises(ValueError, match="validation"):
        load_mnist(validation=12, download=False)


def test_load_mnist_preloads_the_first_kernel_of_fit(tmp_path, monkeypatch, no_data_env):
    """While the files are read, load_mnist loads ``nonzero_rows`` for its dtype (and
    with it Numba's compiler target): ``kernels.train.preload``."""
    import fastnn.kernels.train as kt

    files, _ = make_mnist_like(n_train=4, n_test=2)
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    write_folder(tmp_path / "data", files)
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(kt, "preload", lambda dtype: calls.append(np.dtype(dtype)))
        load_mnist(tmp_path / "data", validation=1, dtype="float64", download=False)
    assert calls == [np.dtype(np.float64)]
    kt.preload(np.float32)
    assert (numba.types.Array(numba.float32, 2, "C"),) in kt.nonzero_rows.signatures


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"validation": -1}, ValueError, "validation"),
        ({"validation": 60000}, ValueError, "validation"),
        ({"validation": 1.5}, TypeError, "validation"),
        ({"validation": True}, TypeError, "validation"),
        ({"validation": "10"}, TypeError, "validation"),
        ({"dtype": "int32"}, ValueError, "dtype"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": object()}, TypeError, "dtype"),
        ({"dtype": "no such type"}, TypeError, "dtype"),
    ],
)
@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
def test_loaders_check_arguments_first(tmp_path, loader, kwargs, error, word):
    with pytest.raises(error, match=word):
        loader(tmp_path / "empty", download=False, **kwargs)


def test_loaders_accept_numpy_integers_and_dtypes(tmp_path, monkeypatch, no_data_env):
    files, _ = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    write_folder(tmp_path, files)
    (X, _), (Xv, _), _ = load_mnist(tmp_path, validation=np.int64(2), dtype=np.float64)
    assert X.shape == (10, 16) and Xv.shape == (2, 16) and X.dtype == np.float64


def test_path_beats_env_var_beats_cache(tmp_path, monkeypatch, no_data_env):
    (a_files, a), (b_files, b), (c_files, c) = (make_mnist_like(seed) for seed in (1, 2, 3))
    write_folder(tmp_path / "a", a_files)
    write_folder(tmp_path / "b", b_files)
    write_folder(cache_dir("mnist"), c_files)
    assert cache_dir("mnist") == tmp_path / "xdg-cache" / "fastnn" / "mnist"

    def first_label(**kwargs):
        (_, y), _, _ = load_mnist(validation=0, download=False, **kwargs)
        return y

    use_checksums(monkeypatch, MNIST_CHECKSUMS, c_files)
    np.testing.assert_array_equal(first_label(), c[TRAIN_LABELS])
    use_checksums(monkeypatch, MNIST_CHECKSUMS, b_files)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "b"))
    np.testing.assert_array_equal(first_label(), b[TRAIN_LABELS])
    use_checksums(monkeypatch, MNIST_CHECKSUMS, a_files)
    np.testing.assert_array_equal(first_label(path=tmp_path / "a"), a[TRAIN_LABELS])


def test_cache_dir_defaults_to_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "fastnn" / "mnist"
    assert cache_dir("fashion-mnist") == tmp_path / ".cache" / "fastnn" / "fashion-mnist"


def test_explicit_folder_missing_files_without_download(tmp_path, server, no_data_env):
    files, _ = make_mnist_like()
    folder = tmp_path / "data"
    write_folder(folder, {TRAIN_IMAGES: files[TRAIN_IMAGES]})
    with pytest.raises(DatasetError) as info:
        load_idx_dataset(
            "MNIST", MNIST_FILES, checksums_of(files), path=folder,
            env_var="FASTNN_DATA", mirrors=[server.url("m")], download=False,
        )
    message = str(info.value)
    assert "3 of 4 files missing" in message
    assert all(name in message for name in (TRAIN_LABELS, TEST_IMAGES, TEST_LABELS))
    assert str(folder) in message and "download=False" in message
    assert "FASTNN_DATA" in message and str(cache_dir("mnist")) in message
    assert f"\n  {server.url('m')}\n" in message  # where to get them
    assert server.requests == []


# --------------------------------------------------------------------------------------
# Downloading (from a real HTTP server on 127.0.0.1)
# --------------------------------------------------------------------------------------


def test_download_into_the_cache_then_load_from_it(server, monkeypatch, no_data_env):
    files, arrays = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    server.serve("m1", files)
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", [server.url("m1")])

    first = load_mnist(validation=2)
    assert sorted(server.requests) == sorted(f"/m1/{name}.gz" for name in MNIST_FILES)
    cache = cache_dir("mnist")
    assert listing(cache) == {f"{name}.gz" for name in MNIST_FILES}
    for name in MNIST_FILES:
        assert (cache / f"{name}.gz").read_bytes() == server.routes[f"/m1/{name}.gz"]

    second = load_mnist(validation=2)
    assert len(server.requests) == 4  # served from the cache
    for (a, b), (c, d) in zip(first, second):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    np.testing.assert_array_equal(second[2][1], arrays[TEST_LABELS])


def test_corrupt_copy_on_first_mirror_falls_back_to_second(server, monkeypatch, no_data_env):
    files, arrays = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    bad = bytearray(files[TRAIN_IMAGES])
    bad[-1] ^= 0xFF  # a valid IDX file with one wrong pixel: only the MD5 can tell
    server.serve("m1", {TRAIN_IMAGES: bytes(bad)})
    server.serve("m2", files)

    (X, y), _, _ = load_mnist(validation=0, mirrors=[server.url("m1"), server.url("m2")])
    np.testing.assert_array_equal(np.rint(X * 255).reshape(-1), arrays[TRAIN_IMAGES].reshape(-1))
    assert server.requests[:2] == [f"/m1/{TRAIN_IMAGES}.gz", f"/m2/{TRAIN_IMAGES}.gz"]
    cache = cache_dir("mnist")
    assert listing(cache) == {f"{name}.gz" for name in MNIST_FILES}  # no bad or temp file
    assert (cache / f"{TRAIN_IMAGES}.gz").read_bytes() == server.routes[f"/m2/{TRAIN_IMAGES}.gz"]


def test_truncated_everywhere_is_an_error_and_leaves_no_whole_looking_file(
    server, monkeypatch, no_data_env
):
    files, _ = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    good_gz = gzip.compress(files[TRAIN_IMAGES])
    server.serve("m1", files)
    server.serve("m2", files)
    # mirror 1 serves a short file; mirror 2 promises the whole file and hangs up early
    server.routes[f"/m1/{TRAIN_IMAGES}.gz"] = good_gz[: len(good_gz) // 2]
    server.routes[f"/m2/{TRAIN_IMAGES}.gz"] = (good_gz[: len(good_gz) // 2], len(good_gz))

    with pytest.raises(DatasetError) as info:
        load_mnist(validation=0, mirrors=[server.url("m1"), server.url("m2")])
    message = str(info.value)
    assert f"1 of 4 files missing: {TRAIN_IMAGES}" in message
    assert server.url("m1") + TRAIN_IMAGES + ".gz" in message
    assert server.url("m2") + TRAIN_IMAGES + ".gz" in message
    assert "gzip stream" in message and "incomplete download" in message
    cache = cache_dir("mnist")
    assert listing(cache) == {f"{name}.gz" for name in MNIST_FILES[1:]}


def test_missing_on_every_mirror_says_what_where_and_how(
    server, tmp_path, monkeypatch, no_data_env
):
    mirrors = [server.url("m1"), server.url("m2")]
    with pytest.raises(DatasetError) as info:
        load_mnist(mirrors=mirrors)
    message = str(info.value)
    assert "MNIST: 4 of 4 files missing" in message
    cache = cache_dir("mnist")
    assert str(cache) in message and "FASTNN_DATA" in message
    for mirror in mirrors:
        for name in MNIST_FILES:
            assert f"{mirror}{name}.gz: HTTP 404" in message
    assert len(server.requests) == 8
    assert listing(cache) == set()


def test_no_server_at_all_is_a_clear_error(no_data_env):
    url = closed_port_url()
    with pytest.raises(DatasetError) as info:
        load_mnist(mirrors=[url], timeout=5)
    message = str(info.value)
    assert "4 of 4 files missing" in message
    assert f"{url}{TRAIN_IMAGES}.gz: " in message
    assert "refused" in message.lower()
    assert f"{url}{TRAIN_LABELS}.gz: " not in message  # an unreachable mirror: asked once
    assert "not asked again" in message
    assert "FASTNN_DATA" in message and str(cache_dir("mnist")) in message
    assert listing(cache_dir("mnist")) == set()


def test_unreachable_mirror_is_skipped_for_the_next(server, monkeypatch, no_data_env):
    files, arrays = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    server.serve("m", files)
    _, _, (_, yt) = load_mnist(validation=0, mirrors=[closed_port_url(), server.url("m")])
    np.testing.assert_array_equal(yt, arrays[TEST_LABELS])
    assert len(server.requests) == 4


def test_no_mirrors_configured(no_data_env):
    with pytest.raises(DatasetError, match="no mirrors configured"):
        load_mnist()


def test_explicit_folder_receives_the_download(server, tmp_path, monkeypatch, no_data_env):
    files, arrays = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    folder = tmp_path / "new" / "data"
    write_folder(folder, {TEST_LABELS: files[TEST_LABELS]}, suffix="")
    server.serve("m", files)
    _, _, (_, yt) = load_mnist(folder, validation=0, mirrors=[server.url("m")])
    np.testing.assert_array_equal(yt, arrays[TEST_LABELS])
    assert sorted(server.requests) == sorted(f"/m/{n}.gz" for n in MNIST_FILES[:3])
    assert listing(folder) == {TEST_LABELS} | {f"{n}.gz" for n in MNIST_FILES[:3]}
    assert not cache_dir("mnist").exists()


def test_uncompressed_download_is_saved_without_gz_suffix(server, monkeypatch, no_data_env):
    files, _ = make_mnist_like()
    use_checksums(monkeypatch, MNIST_CHECKSUMS, files)
    server.serve("m", files, compress=lambda data: data)
    load_mnist(validation=0, mirrors=[server.url("m")])
    assert listing(cache_dir("mnist")) == set(MNIST_FILES)


def test_fashion_mnist_downloads_into_its_own_cache(server, tmp_path, monkeypatch, no_data_env):
    files, arrays = make_mnist_like(seed=7)
    use_checksums(monkeypatch, FASHION_MNIST_CHECKSUMS, files)
    server.serve("fashion", files)
    monkeypatch.setattr(mnist_module, "FASHION_MNIST_MIRRORS", [server.url("fashion")])
    # $FASTNN_DATA is MNIST's: Fashion-MNIST must not look there
    other, _ = make_mnist_like(seed=8)
    write_folder(tmp_path / "mnist", other)
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "mnist"))

    (X, y), (Xv, yv), (Xt, yt) = load_fashion_mnist(validation=4)
    assert X.shape == (8, 16) and Xv.shape == (4, 16) and Xt.shape == (5, 16)
    np.testing.assert_array_equal(np.concatenate([y, yv]), arrays[TRAIN_LABELS])
    assert listing(cache_dir("fashion-mnist")) == {f"{n}.gz" for n in MNIST_FILES}
    assert not cache_dir("mnist").exists()

    # $FASTNN_FASHION_DATA is its folder; nothing there and no download -> error
    monkeypatch.setenv("FASTNN_FASHION_DATA", str(tmp_path / "fashion"))
    with pytest.raises(DatasetError) as info:
        load_fashion_mnist(download=False)
    message = str(info.value)
    assert "Fashion-MNIST: 4 of 4 files missing" in message
    assert str(tmp_path / "fashion") in message and "$FASTNN_FASHION_DATA" in message


def test_fashion_mnist_through_the_generic_loader(server, tmp_path):
    files, arrays = make_mnist_like(seed=9)
    server.serve("f", files, compress=bz2.compress)  # any compression of the right bytes
    loaded = load_idx_dataset(
        "Fashion-MNIST", MNIST_FILES, checksums_of(files),
        mirrors=[server.url("f")], cache_subdir="fashion-mnist",
    )
    for name in MNIST_FILES:
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert listing(cache_dir("fashion-mnist")) == {f"{n}.bz2" for n in MNIST_FILES}


# --------------------------------------------------------------------------------------
# The real data sets
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_mnist():
    """MNIST as a user gets it: $FASTNN_DATA, else the cache, else downloaded.

    CI points FASTNN_DATA at ../shared/data/mnist; with neither data nor network the
    loader's error (which says where to put the files) fails these tests.
    """
    return load_mnist()


def test_real_mnist_default_split(real_mnist):
    (X, y), (Xv, yv), (Xt, yt) = real_mnist
    assert X.shape == (50000, 784) and Xv.shape == (10000, 784) and Xt.shape == (10000, 784)
    assert y.shape == (50000,) and yv.shape == (10000,) and yt.shape == (10000,)
    for images, labels in real_mnist:
        assert images.dtype == np.float32 and images.flags.c_contiguous
        assert labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0
        counts = np.bincount(labels, minlength=10)
        assert len(counts) == 10 and counts.min() > 0.08 * len(labels)
        np.testing.assert_array_equal(np.rint(images[:100] * 255) / 255, images[:100])
    assert y[0] == 5 and yt[0] == 7
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert yv[-1] == 8  # the last training label
    assert np.bincount(np.concatenate([y, yv])).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]


def test_real_mnist_all_training_images_in_float64(real_mnist):
    (X, y), (Xv, yv), (Xt, yt) = load_mnist(validation=0, dtype="float64")
    assert X.shape == (60000, 784) and X.dtype == np.float64
    assert Xv.shape == (0, 784) and yv.shape == (0,)
    (X32, y32), (Xv32, yv32), (Xt32, _) = real_mnist
    # k/255 rounded to float32 is the same whether divided in float64 or float32
    assert np.array_equal(X[:50000].astype(np.float32), X32)
    assert np.array_equal(X[50000:].astype(np.float32), Xv32)
    assert np.array_equal(Xt.astype(np.float32), Xt32)
    np.testing.assert_array_equal(y, np.concatenate([y32, yv32]))


def test_real_fashion_mnist():
    # $FASTNN_FASHION_DATA (CI: Debian's dataset-fashion-mnist), else the cache or download
    (X, y), (Xv, yv), (Xt, yt) = load_fashion_mnist(validation=0)
    assert X.shape == (60000, 784) and Xt.shape == (10000, 784) and Xv.shape == (0, 784)
    assert X.dtype == np.float32 and X.min() == 0.0 and X.max() == 1.0
    assert y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert yt[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10


# --------------------------------------------------------------------------------------
# Synthetic problems
# --------------------------------------------------------------------------------------

GENERATORS = {
    "gaussian_clouds": (gaussian_clouds, {"n_per_class": 40}, 120, 3),
    "xor": (xor, {"n": 90}, 90, 2),
    "spirals": (spirals, {"n_per_class": 30, "n_classes": 3}, 90, 3),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_shapes_dtypes_and_determinism(name):
    make, kwargs, n, n_classes = GENERATORS[name]
    X, y = make(**kwargs)
    assert X.shape == (n, 2) and X.dtype == np.float64 and X.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(y.tolist()) == set(range(n_classes))
    X2, y2 = make(**kwargs)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(**kwargs, seed=1)
    assert not np.array_equal(X, X3)
    X32, y32 = make(**kwargs, dtype="float32")
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, X, rtol=1e-6)
    np.testing.assert_array_equal(y32, y)


def test_gaussian_clouds_sit_around_their_centres():
    X, y = gaussian_clouds(n_per_class=4000, std=0.3, seed=3)
    angles = np.deg2rad([90, 210, 330])
    centres = 2 * np.column_stack([np.cos(angles), np.sin(angles)])
    for k in range(3):
        np.testing.assert_allclose(X[y == k].mean(axis=0), centres[k], atol=0.02)
        np.testing.assert_allclose(X[y == k].std(axis=0), [0.3, 0.3], rtol=0.05)
    assert np.bincount(y).tolist() == [4000] * 3


def test_gaussian_clouds_with_custom_centres_and_no_shuffle():
    centres = [[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]]
    X, y = gaussian_clouds(n_per_class=5, centers=centres, std=0.0, shuffle=False)
    assert X.shape == (20, 3)
    np.testing.assert_array_equal(y, np.repeat(np.arange(4), 5))
    np.testing.assert_array_equal(X, np.repeat(np.array(centres, float), 5, axis=0))


def test_xor_labels_follow_the_quadrants():
    X, y = xor(n=500, noise=0.0, seed=5)
    np.testing.assert_array_equal(y, (X[:, 0] * X[:, 1] < 0).astype(np.int64))
    assert np.abs(X).max() <= 1.0
    assert 200 < y.sum() < 300
    Xn, yn = xor(n=500, noise=0.1, seed=5)
    np.testing.assert_array_equal(yn, y)  # same labels, noisy points
    assert 0 < np.abs(Xn - X).max() < 1.0


def test_spirals_geometry():
    X, y = spirals(n_per_class=50, n_classes=2, noise=0.0, shuffle=False)
    radius = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(radius[:50], np.linspace(0, 1, 50), atol=1e-12)
    np.testing.assert_allclose(X[50:], -X[:50], atol=1e-12)  # two arms: point symmetric
    np.testing.assert_array_equal(y, np.repeat([0, 1], 50))


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: gaussian_clouds(n_per_class=0), ValueError, "n_per_class"),
        (lambda: gaussian_clouds(n_per_class=2.5), TypeError, "n_per_class"),
        (lambda: gaussian_clouds(std=-1.0), ValueError, "std"),
        (lambda: gaussian_clouds(centers=[1.0, 2.0]), ValueError, "centers"),
        (lambda: gaussian_clouds(centers=[[0, np.nan]]), ValueError, "centers"),
        (lambda: gaussian_clouds(centers="abc"), TypeError, "centers"),
        (lambda: gaussian_clouds(dtype="int32"), ValueError, "dtype"),
        (lambda: xor(n=-3), ValueError, "n"),
        (lambda: xor(noise=float("nan")), ValueError, "noise"),
        (lambda: xor(noise="a"), TypeError, "noise"),
        (lambda: spirals(n_classes=0), ValueError, "n_classes"),
        (lambda: spirals(n_per_class=True), TypeError, "n_per_class"),
        (lambda: spirals(turns=-1.0), ValueError, "turns"),
        (lambda: spirals(dtype="float16"), ValueError, "dtype"),
    ],
)
def test_generators_reject_bad_arguments(call, error, word):
    with pytest.raises(error, match=word):
        call()


# --------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------


def correlated_data(n=500, seed=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(5, 5))
    return rng.normal(size=(n, 5)) @ mixing + rng.normal(size=5) * 10


def test_one_hot_round_trip():
    y = np.array([3, 0, 2, 2, 1])
    encoded = one_hot(y)
    assert encoded.shape == (5, 4) and encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded.argmax(axis=1), y)
    np.testing.assert_array_equal(encoded.sum(axis=1), np.ones(5))
    wide = one_hot(y, n_classes=10, dtype="float32")
    assert wide.shape == (5, 10) and wide.dtype == np.float32
    np.testing.assert_array_equal(wide[:, :4], encoded)
    assert not wide[:, 4:].any()
    assert one_hot([]).shape == (0, 0)
    assert one_hot(np.array([], dtype=np.int64), n_classes=3).shape == (0, 3)


@pytest.mark.parametrize(
    "args, error, word",
    [
        (([0.0, 1.0],), TypeError, "y"),
        (([[0, 1]],), ValueError, "y"),
        (([0, -1],), ValueError, "y"),
        (([0, 3], 3), ValueError, "n_classes"),
        (([0], 0), ValueError, "n_classes"),
        (([0], 2.0), TypeError, "n_classes"),
        (([0], 2, "no such dtype"), TypeError, "dtype"),
    ],
)
def test_one_hot_rejects_bad_input(args, error, word):
    with pytest.raises(error, match=word):
        one_hot(*args)


def test_standardize_uses_training_statistics():
    X = correlated_data()
    other = correlated_data(n=50, seed=1)
    Z, Z_other = standardize(X, other)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(Z_other, (other - X.mean(0)) / X.std(0), rtol=1e-12)
    single = standardize(X)
    assert isinstance(single, np.ndarray)
    np.testing.assert_array_equal(single, Z)


def test_standardizer_keeps_state_and_handles_constant_features():
    X = np.column_stack([np.arange(6.0), np.full(6, 7.0)]).astype(np.float32)
    scaler = Standardizer().fit(X)
    np.testing.assert_allclose(scaler.mean_, [2.5, 7.0])
    np.testing.assert_allclose(scaler.scale_, [np.std(np.arange(6.0)), 1.0])
    Z = scaler.transform(X)
    assert Z.dtype == np.float32 and np.all(np.isfinite(Z))
    np.testing.assert_array_equal(Z[:, 1], 0)
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(Standardizer().fit_transform(X), Z)
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(X)


@pytest.mark.parametrize("function", [standardize, whiten])
@pytest.mark.parametrize(
    "args, error, word",
    [
        ((np.arange(5.0),), ValueError, "X_train"),
        ((np.array([[1.0, np.nan], [0.0, 1.0]]),), ValueError, "X_train"),
        ((np.array([["a", "b"]]),), TypeError, "X_train"),
        ((np.zeros((0, 3)),), ValueError, "X_train"),
        ((correlated_data(), correlated_data(), np.ones((2, 4))), ValueError, "others\\[1\\]"),
        ((correlated_data(), np.full((2, 5), np.inf)), ValueError, "others\\[0\\]"),
    ],
)
def test_standardize_and_whiten_name_bad_arguments(function, args, error, word):
    with pytest.raises(error, match=word):
        function(*args)


def test_whiten_gives_identity_covariance_on_train():
    X = correlated_data()
    X_test = correlated_data(n=40, seed=2)
    Z, Z_test = whiten(X, X_test)
    assert Z.shape == (500, 5) and Z_test.shape == (40, 5)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(np.cov(Z, rowvar=False, bias=True), np.eye(5), atol=1e-8)
    np.testing.assert_allclose(whiten(X, X_test)[1], Z_test)  # deterministic
    transform = PCA(whiten=True).fit(X)
    np.testing.assert_allclose(transform.transform(X_test), Z_test, atol=1e-12)
    np.testing.assert_allclose(transform.inverse_transform(Z_test), X_test, rtol=1e-10)


def test_whiten_drops_empty_directions_of_rank_deficient_data():
    X = correlated_data()
    X = np.column_stack([X, X[:, 0] + X[:, 1], np.full(len(X), 3.0)])  # rank 5 of 7
    Z = whiten(X)
    assert Z.shape == (500, 5)
    np.testing.assert_allclose(np.cov(Z, rowvar=False, bias=True), np.eye(5), atol=1e-8)
    with pytest.raises(ValueError, match="n_components"):
        whiten(X, n_components=6)
    with pytest.raises(ValueError, match="no variance"):
        whiten(np.ones((10, 3)))


def test_pca_reconstructs_with_all_components():
    X = correlated_data()
    fitted = pca(X)
    assert fitted.n_components_ == 5 and fitted.components_.shape == (5, 5)
    np.testing.assert_allclose(fitted.components_ @ fitted.components_.T, np.eye(5), atol=1e-12)
    Z = fitted.transform(X)
    np.testing.assert_allclose(fitted.inverse_transform(Z), X, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fitted.explained_variance_ratio_.sum(), 1.0)
    eigenvalues = np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True))[::-1]
    np.testing.assert_allclose(fitted.explained_variance_, eigenvalues, rtol=1e-10)
    np.testing.assert_allclose(Z.var(axis=0), eigenvalues, rtol=1e-10)


def test_pca_projects_on_the_top_directions():
    X = correlated_data()
    top = pca(X, n_components=2)
    Z = top.transform(X)
    assert Z.shape == (500, 2)
    _, vectors = np.linalg.eigh(np.cov(X, rowvar=False, bias=True))
    expected = (X - X.mean(0)) @ vectors[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(Z), np.abs(expected), rtol=1e-8, atol=1e-8)
    rows = np.arange(2)
    pivots = np.abs(top.components_).argmax(axis=1)
    assert np.all(top.components_[rows, pivots] > 0)  # the sign convention
    assert top.transform(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: pca(np.ones((4, 3)), n_components=5), ValueError, "n_components"),
        (lambda: pca(np.ones((4, 3)), n_components=0), ValueError, "n_components"),
        (lambda: pca(np.ones((4, 3)), n_components=1.5), TypeError, "n_components"),
        (lambda: pca(np.ones(4)), ValueError, "X"),
        (lambda: pca(np.ones((4, 3))).transform(np.ones((2, 2))), ValueError, "X"),
        (lambda: PCA().transform(np.ones((2, 2))), RuntimeError, "fit"),
        (lambda: PCA(eps=-1.0), ValueError, "eps"),
        (lambda: standardize(np.ones((2, 2)), eps="x"), TypeError, "eps"),
    ],
)
def test_pca_rejects_bad_arguments(call, error, word):
    with pytest.raises(error, match=word):
        call()
