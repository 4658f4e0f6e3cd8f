"""What a fit compiles: the small-batch epoch takes its kernels as function pointers
(``fastnn/kernels/pointers.py``), so the kernels a fit never calls are not compiled.

The case runs in a fresh process with an empty Numba cache of its own and reports which
kernels that process compiled: had ``train_epoch_fused`` called a kernel by name, it
would have been compiled with the epoch even where the fit never runs it. (With a warm
cache the epoch is loaded whole and its callees are not compiled, so the cache must be
empty: the case compiles for 35-70 s on 2 cores, Zen 1.) One fit that runs none of the
other kernels (dense input, plain SGD, no max-norm) covers them all at once; a second
case, sparse SGD beside dense Adam with max-norm, cost CI another ~40 s and could catch
no by-name call that this one misses. The fit compiles as a user's first would, with a
second process compiling part of the kernels into the empty cache
(``fastnn/kernels/aside.py``): the case also checks that this process loaded that part
and that its weights are those of the same fit in the test process."""
import json
import textwrap

import numpy as np
import pytest

from conftest import run_with_threads

SCRIPT = textwrap.dedent(r"""
    import json, numpy as np, fastnn as fnn
    from fastnn.kernels import dense, halves, updates
    sparse, rule, max_norm = SPARSE, RULE, MAX_NORM
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 40))
    if sparse:
        X[rng.random(X.shape) < 0.8] = 0       # a CSR index: the sparse first layer
    y = rng.integers(0, 3, 200)
    opt = fnn.SGD(0.05, momentum=0.9) if rule == "sgd" else fnn.Adam(0.01)
    net = fnn.Network([40, 40, 3], hidden="relu", seed=0)   # sparse: halves 32 + 8
    net.fit(X, y, epochs=1, batch_size=8, optimizer=opt, max_norm=max_norm,
            progress=False)
    assert np.isfinite(net.params).all()
    kernels = {"forward_sparse": dense.forward_sparse,
               "fused_sparse_update": updates.fused_sparse_update,
               "fused_sparse_sgd": updates.fused_sparse_sgd,
               "fused_sparse_sgd_sorted": updates.fused_sparse_sgd_sorted,
               "fused_sparse_sgd_summed": updates.fused_sparse_sgd_summed,
               "fused_layer_update": updates.fused_layer_update,
               "adaptive_region": updates._adaptive_region,
               "max_norm_columns": updates.max_norm_columns,
               "first_layer_halves": halves.first_layer_halves}
    from fastnn.kernels import train
    loaded = sorted({k.dispatcher.py_func.__name__ for ks in train._FUSED_KERNELS.values()
                     for k in ks if sum(k.dispatcher._cache_hits.values())})
    print(json.dumps([sorted(k for k, d in kernels.items() if d.signatures), loaded,
                      net.params.tolist()], separators=(",", ":")))
""")


@pytest.mark.parametrize("sparse,rule,max_norm,expected", [
    (False, "sgd", None, ["fused_layer_update"]),
])
def test_a_fit_compiles_only_the_kernels_it_runs(sparse, rule, max_norm, expected,
                                                 tmp_path):
    script = SCRIPT.replace("SPARSE, RULE, MAX_NORM", f"{sparse!r}, {rule!r}, {max_norm!r}")
    (out,) = run_with_threads(script, 2, NUMBA_CACHE_DIR=str(tmp_path),
                              FASTNN_COMPILE_ASIDE="1")
    compiled, loaded, params = json.loads(out)
    assert compiled == expected
    # with the cache empty, what that process loaded from it a second one compiled
    # (fastnn/kernels/aside.py); the weights are those of the same fit here
    assert loaded
    here = {}
    exec(script.split("kernels = {")[0], here)
    assert np.array_equal(np.array(params, np.float32), here["net"].params)
