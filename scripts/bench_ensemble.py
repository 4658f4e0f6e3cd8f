"""Ensemble.fit, parallel vs sequential path, on MNIST: 784-100-10 relu/softmax float32,
one epoch (50,000 samples) per fit, 2 and 4 members, batch 10 and 32, SGD(0.1,
momentum=0.9) and Adam(1e-3). The two paths alternate ``--repeat`` times and the
minimum of each is kept.

Besides the wall time it reports the busiest thread's CPU time (from
``/proc/self/task``, Linux only): on a machine whose cores are busy with other jobs the
wall time hides the gain, while the busiest thread's CPU time is the wall time the fit
would take with the cores free (the critical path). Run with a warm Numba cache::

    FASTNN_DATA=/path/to/mnist python scripts/bench_ensemble.py --repeat 3
"""
import argparse
import os
import time

import numba

import fastnn as fnn


def thread_cpu():
    """CPU seconds (user + system) of each thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    (X, y), _, _ = fnn.datasets.load_mnist()
    print(f"numba threads {numba.get_num_threads()}, X {X.shape} {X.dtype}")
    makers = {"sgd_m": lambda: fnn.SGD(0.1, momentum=0.9), "adam": lambda: fnn.Adam(1e-3)}
    for name, make in makers.items():
        for members in (2, 4):
            for batch in (10, 32):
                wall = {True: float("inf"), False: float("inf")}
                busiest = dict(wall)
                for _ in range(args.repeat):
                    for parallel in (True, False):
                        ens = fnn.Ensemble(members, [784, 100, 10], seed=0)
                        before, t0 = thread_cpu(), time.perf_counter()
                        ens.fit(X, y, epochs=1, batch_size=batch, optimizer=make(),
                                progress=False, parallel=parallel)
                        w, after = time.perf_counter() - t0, thread_cpu()
                        wall[parallel] = min(wall[parallel], w)
                        busiest[parallel] = min(busiest[parallel], max(
                            after[t] - before.get(t, 0.0) for t in after))
                print(f"{name:6s} members {members} batch {batch:3d}: wall parallel "
                      f"{wall[True]:.2f}s sequential {wall[False]:.2f}s "
                      f"ratio {wall[False] / wall[True]:.2f}x | busiest thread parallel "
                      f"{busiest[True]:.2f}s sequential {busiest[False]:.2f}s "
                      f"ratio {busiest[False] / busiest[True]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
