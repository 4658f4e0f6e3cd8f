"""Data for fastnn: MNIST and Fashion-MNIST, small synthetic problems, preprocessing.

Loaders
    `load_mnist`, `load_fashion_mnist` return ``(X_train, y_train), (X_val, y_val),
    (X_test, y_test)`` with images flattened to (n, 784) and scaled to [0, 1]. The
    files come from the ``path`` argument, else ``$FASTNN_DATA`` (MNIST) or
    ``$FASTNN_FASHION_DATA`` (Fashion-MNIST), else the cache folder (`cache_dir`),
    else the mirrors, and are verified by MD5. `load_idx_dataset` is the generic
    machinery; `read_idx` and `write_idx` handle single IDX files. Problems with a
    file raise `DatasetError`.

Synthetic problems
    `gaussian_clouds`, `xor`, `spirals`: small 2-D classification sets.

Preprocessing
    `one_hot`, `standardize` / `Standardizer`, `pca` / `PCA`, `whiten`.
"""

from fastnn.datasets.mnist import (
    FASHION_MNIST_CHECKSUMS,
    FASHION_MNIST_MIRRORS,
    MNIST_CHECKSUMS,
    MNIST_FILES,
    MNIST_MIRRORS,
    DatasetError,
    cache_dir,
    load_fashion_mnist,
    load_idx_dataset,
    load_mnist,
    read_idx,
    write_idx,
)
from fastnn.datasets.preprocessing import (
    PCA,
    Standardizer,
    one_hot,
    pca,
    standardize,
    whiten,
)
from fastnn.datasets.synthetic import gaussian_clouds, spirals, xor

__all__ = [
    "FASHION_MNIST_CHECKSUMS",
    "FASHION_MNIST_MIRRORS",
    "MNIST_CHECKSUMS",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "PCA",
    "DatasetError",
    "Standardizer",
    "cache_dir",
    "gaussian_clouds",
    "load_fashion_mnist",
    "load_idx_dataset",
    "load_mnist",
    "one_hot",
    "pca",
    "read_idx",
    "spirals",
    "standardize",
    "whiten",
    "write_idx",
    "xor",
]
