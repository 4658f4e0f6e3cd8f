"""Same seed and data -> bitwise the same weights, whatever the thread count."""
import numpy as np

import fastnn as fnn

from conftest import run_with_threads

SCRIPT = r"""
import hashlib, numpy as np, fastnn as fnn
rng = np.random.default_rng(0)
X = rng.random((700, 20)).astype(np.float32)
X[X < 0.6] = 0
y = rng.integers(0, 5, 700)
out = []
for batch in (1, 16, 100, 700):
    net = fnn.Network([20, 32, 16, 5], hidden="relu", seed=3, dtype="float32")
    net.fit(X, y, epochs=2, batch_size=batch, optimizer=fnn.SGD(0.05, momentum=0.9),
            l2=1e-4, progress=False)
    out.append(hashlib.sha256(net.params.tobytes()).hexdigest())
print(" ".join(out))
"""


def test_bitwise_identical_on_one_and_two_threads():
    one, two = run_with_threads(SCRIPT, 1), run_with_threads(SCRIPT, 2)
    assert len(one) == 4
    assert one == two


def test_same_seed_same_weights_different_seed_different_weights():
    rng = np.random.default_rng(1)
    X, y = rng.random((90, 7)), rng.integers(0, 3, 90)

    def train(seed):
        net = fnn.Network([7, 9, 3], seed=seed)
        net.fit(X, y, epochs=3, batch_size=8, optimizer=fnn.SGD(0.1, momentum=0.9),
                progress=False)
        return net.params

    assert np.array_equal(train(4), train(4))
    assert not np.array_equal(train(4), train(5))
