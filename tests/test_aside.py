"""A cold fit's kernels compiled in a second process (``fastnn/kernels/aside.py``): which
kernels go there, that it compiles them into the shared Numba cache for this process to
load, and that this process compiles them itself if it fails.

Each case runs in a fresh process with an empty cache of its own, on the empty
stand-in kernels (``no_*``: they compile for any argument types in well under a second),
with ``aside``'s costs set so the second process pays. The whole path, on a real fit,
is ``test_compile.py``'s."""
import json
import textwrap

import pytest

from conftest import run_with_threads

SCRIPT = textwrap.dedent(r"""
    import inspect, json
    from numba import types
    from fastnn.kernels import aside, dense, halves, updates
    aside._HELPER = HELPER or aside._HELPER
    aside.MIN_ASIDE = 1.5
    aside.COSTS.update(no_max_norm=1.0, no_sparse_update=1.0, no_forward_sparse=1.5,
                       no_first_layer_halves=1.0, _no_adaptive_step=0.5)
    f = types.float32

    def args(kernel, *last):
        n = len(inspect.signature(kernel.py_func).parameters)
        return (f,) * (n - len(last)) + last

    # one group (c takes a's and b's function types), then two kernels alone:
    # costs 3 | 1.5 | 0.5; the second process takes what fits in half (2.5): d and e
    plan = {"a": (updates.no_max_norm, args(updates.no_max_norm)),
            "b": (updates.no_sparse_update, args(updates.no_sparse_update)),
            "c": (halves.no_first_layer_halves,
                  args(halves.no_first_layer_halves, aside.Ref("a"), aside.Ref("b"))),
            "d": (dense.no_forward_sparse, args(dense.no_forward_sparse)),
            "e": (updates._no_adaptive_step, args(updates._no_adaptive_step))}
    aside.COSTS["no_forward_sparse"] = 5.0   # costs 3 | 5 | 0.5: the group and e go
    grouped = aside.split(plan)
    aside.COSTS["no_forward_sparse"] = 1.5
    share = aside.split(plan)
    made = aside.compile_plan(plan)
    loaded = sorted(name for name, (kernel, _) in plan.items()
                    if sum(kernel._cache_hits.values()))
    types_ok = made["c"].signature().args[-2:] == (
        types.FunctionType(made["a"].signature()), types.FunctionType(made["b"].signature()))
    print(json.dumps([grouped, share, loaded, types_ok, aside.split(plan)],
                     separators=(",", ":")))
""")


def _run(tmp_path, helper=None):
    script = SCRIPT.replace("HELPER or", f"{helper!r} or")
    (out,) = run_with_threads(script, 2, NUMBA_CACHE_DIR=str(tmp_path),
                              FASTNN_COMPILE_ASIDE="1")
    return json.loads(out)


def test_second_process_compiles_its_share_into_the_cache(tmp_path):
    """The largest group that fits in half the work goes aside, whole (``c`` with the
    kernels whose function types it takes); this process loads exactly those from the
    cache, with the same function types; afterwards nothing is left to split."""
    grouped, share, loaded, types_ok, after = _run(tmp_path)
    assert grouped == ["a", "b", "c", "e"]
    assert share == ["d", "e"]
    assert loaded == ["d", "e"]
    assert types_ok
    assert after == []


@pytest.mark.parametrize("helper", ["import sys; sys.exit(3)", "import os; os._exit(0)"])
def test_failed_second_process_leaves_the_compiling_here(tmp_path, helper):
    """A second process that fails (or exits without compiling) costs only its time:
    this process compiles its share itself."""
    _, share, loaded, types_ok, after = _run(tmp_path, helper)
    assert share == ["d", "e"]
    assert loaded == []
    assert types_ok and after == []
