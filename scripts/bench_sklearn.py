"""Time ``fit`` of fastnn.sklearn.MLPClassifier against scikit-learn's MLPClassifier.

Both estimators get identical settings -- hidden layer (100,), relu, the same solver,
batch size, learning rate, alpha and random_state -- and run a fixed number of epochs
on MNIST's 50,000 training images (float32, so scikit-learn computes in float32 too):
``tol=0`` and ``n_iter_no_change=max_iter`` keep either from stopping early. fastnn's
kernels are compiled and warmed on a small fit first. The two alternate ``--repeat``
times in one process and the fastest fit of each is kept. Reported per configuration:
seconds per epoch (the whole ``fit`` divided by the epochs), fastnn's speed-up, and the
test accuracy of each on MNIST's 10,000 test images. The share of the cores other
processes used during the run is printed (and the table marked when it is over a
quarter), since on a busy machine the timings are not meaningful.

With ``--write`` the table replaces the section "## scikit-learn estimators" of
``docs/benchmarks.md`` (appended if absent), together with the command line, core count
and load.

Usage::

    FASTNN_DATA=/path/to/mnist python scripts/bench_sklearn.py --write
    python scripts/bench_sklearn.py --solvers adam --batches 32 --epochs 3 --repeat 1
"""
import argparse
import os
import platform
import sys
import time
import warnings
from datetime import date

import numpy as np

HEADING = "## scikit-learn estimators"
SETTINGS = {"adam": dict(learning_rate_init=0.001),
            "sgd": dict(learning_rate_init=0.05, momentum=0.9)}


def make(impl, solver, batch, epochs):
    kw = dict(hidden_layer_sizes=(100,), activation="relu", solver=solver,
              batch_size=batch, alpha=1e-4, max_iter=epochs, tol=0.0,
              n_iter_no_change=epochs, shuffle=True, random_state=0, **SETTINGS[solver])
    if impl == "fastnn":
        from fastnn.sklearn import MLPClassifier
        return MLPClassifier(dtype="float32", **kw)
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier(**kw)


def timed_fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning: max_iter is reached
        t0 = time.perf_counter()
        est.fit(X, y)
        return time.perf_counter() - t0


def load():
    import fastnn
    (X, y), _, (Xt, yt) = fastnn.datasets.load_mnist(dtype="float32")
    return X, y, Xt, yt


def load_text():
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def cpu_mark():
    """(wall seconds, CPU seconds all processes used, CPU seconds this process used).

    The load average cannot tell a busy machine from this benchmark's own threads, so
    the share of the cores *other* processes used during the run is taken from
    ``/proc/stat`` (Linux) minus this process's own CPU time; ``None`` elsewhere.
    """
    own = sum(os.times()[:4])
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return time.perf_counter(), None, own
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # - idle, iowait
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), own


def others_share(start, end):
    """Fraction of all cores that other processes kept busy between two cpu_mark()s."""
    if start[1] is None or end[1] is None:
        return None
    wall = end[0] - start[0]
    return max(0.0, (end[1] - start[1]) - (end[2] - start[2])) / (wall * os.cpu_count())


def write_section(path, section):
    """Replace the section under HEADING in ``path`` (up to the next "## " heading) by
    ``section``, or append it."""
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(HEADING)), None)
    if start is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines))
                    if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        text = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--solvers", default="adam,sgd", help="comma-separated: adam, sgd")
    p.add_argument("--batches", default="32,200", help="comma-separated batch sizes")
    p.add_argument("--epochs", type=int, default=5, help="epochs per fit")
    p.add_argument("--repeat", type=int, default=2,
                   help="fits of each estimator (alternating); the fastest is kept")
    p.add_argument("--write", action="store_true",
                   help="write the section '%s' of docs/benchmarks.md" % HEADING)
    args = p.parse_args(argv)
    solvers = [s.strip() for s in args.solvers.split(",")]
    for s in solvers:
        if s not in SETTINGS:
            p.error(f"unknown solver {s!r}; choose from {','.join(SETTINGS)}")
    batches = [int(b) for b in args.batches.split(",")]

    X, y, Xt, yt = load()
    load_before = load_text()
    mark = cpu_mark()
    for solver in solvers:          # compile / load fastnn's kernels outside the timing
        for batch in batches:
            timed_fit(make("fastnn", solver, batch, 1), X[:2000], y[:2000])
    rows = []
    for solver in solvers:
        for batch in batches:
            best = {"fastnn": np.inf, "sklearn": np.inf}
            acc = {}
            for _ in range(args.repeat):
                for impl in ("fastnn", "sklearn"):
                    est = make(impl, solver, batch, args.epochs)
                    best[impl] = min(best[impl], timed_fit(est, X, y) / args.epochs)
                    acc[impl] = est.score(Xt, yt)
            rows.append((solver, batch, best, acc))
            print(f"{solver} batch {batch}: fastnn {best['fastnn']:.3f} s/epoch, "
                  f"sklearn {best['sklearn']:.3f} s/epoch, "
                  f"{best['sklearn'] / best['fastnn']:.1f}x; accuracy "
                  f"{acc['fastnn']:.4f} / {acc['sklearn']:.4f}", file=sys.stderr,
                  flush=True)
    load_after = load_text()
    share = others_share(mark, cpu_mark())
    if share is None:      # no /proc/stat: the load average before the run is all we have
        busy = float(load_before.split()[0]) > 0.5 * os.cpu_count()
    else:
        busy = share > 0.25

    lines = ["| solver | batch | fastnn s/epoch | sklearn s/epoch | speed-up | "
             "fastnn test acc. | sklearn test acc. |", "|---|---|---|---|---|---|---|"]
    for solver, batch, t, a in rows:
        extra = ", Nesterov momentum 0.9" if solver == "sgd" else ""
        lines.append(f"| {solver}, lr {SETTINGS[solver]['learning_rate_init']}{extra} | "
                     f"{batch} | {t['fastnn']:.3f} | {t['sklearn']:.3f} | "
                     f"{t['sklearn'] / t['fastnn']:.1f}x | {a['fastnn']:.4f} | "
                     f"{a['sklearn']:.4f} |")
    table = "\n".join(lines)
    cmd = "python scripts/bench_sklearn.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    info = (f"{date.today()}, {os.cpu_count()} cores ({platform.machine()}), MNIST "
            f"{X.shape[0]} training / {Xt.shape[0]} test images, float32, hidden layer "
            f"(100,) relu, alpha 1e-4, {args.epochs} epochs per fit, best of "
            f"{args.repeat}; load average (1/5/15 min) {load_before} before, "
            f"{load_after} after (this benchmark's own threads included)"
            + ("" if share is None else
               f"; other processes used {100 * share:.0f}% of the cores during the run"))
    warning = ("**Measured on a busy machine** (other processes used over a quarter of "
               "the cores): "
               "other jobs shared the cores, so these timings are not meaningful; re-run "
               "on a quiet machine before quoting them.\n\n" if busy else "")
    print(table)
    print(info)
    if busy:
        print(warning.strip())
    if args.write:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs",
                            "benchmarks.md")
        write_section(path, (
            f"{HEADING}\n\n`fit` of `fastnn.sklearn.MLPClassifier` and scikit-learn's "
            f"`MLPClassifier` with identical settings (`tol=0`, `n_iter_no_change=max_iter`"
            f": both run every epoch), alternated in one process; seconds per epoch are "
            f"the whole `fit` over the epochs (input checks included). Produced by\n\n"
            f"```\n{cmd.strip()}\n```\n\n{info}.\n\n{warning}{table}\n\n"
            f"Both compute in float32 here. Their test accuracies differ by the chance "
            f"of different sample orders (and, for adam, where epsilon enters; see "
            f"[sklearn.md](sklearn.md)).\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
