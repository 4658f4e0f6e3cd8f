"""Time one training epoch of fastnn beside its peers, in one run on one machine.

For each configuration, one epoch over the same 50,000 MNIST images (float32; synthetic
MNIST-shaped data with ~19% non-zero pixels if MNIST cannot be loaded) with the same layer
sizes, batch size, learning rate and momentum, for:

- fastnn (kernels compiled and warmed before timing),
- PyTorch CPU (``torch.set_num_threads`` = all cores; a plain loop over mini-batches),
- scikit-learn's ``MLPClassifier(solver="sgd")`` (its output is always softmax/log-loss,
  so configuration A runs with that output instead of sigmoid/quadratic),
- fastnn's own NumPy reference (``fastnn.reference``), timed on a slice of the epoch and
  scaled to 50,000 samples when ``--reference-samples`` is smaller.

Speed-ups are ratios measured in the same run (fastnn and PyTorch time their epochs in
turns, best of ``--repeat`` each). The result table is printed and, with
``--write``, written to ``docs/benchmarks.md`` together with the command line, the core
count and numpy's measured sgemm GFLOP/s for scale.

Usage::

    python scripts/compare_peers.py --write
    python scripts/compare_peers.py --configs B --peers fastnn,torch --repeat 3
"""
import argparse
import os
import platform
import sys
import time
from datetime import date

import numpy as np

CONFIGS = {
    "A": dict(sizes=[784, 30, 10], hidden="sigmoid", output="sigmoid", cost="quadratic",
              batch=10, lr=3.0, momentum=0.0),
    "B": dict(sizes=[784, 100, 10], hidden="relu", output="softmax", cost="log_likelihood",
              batch=32, lr=0.05, momentum=0.9),
    "C": dict(sizes=[784, 512, 512, 10], hidden="relu", output="softmax",
              cost="log_likelihood", batch=256, lr=0.05, momentum=0.9),
    "D": dict(sizes=[784, 100, 10], hidden="relu", output="softmax", cost="log_likelihood",
              batch=1, lr=0.01, momentum=0.0),
}
PEERS = ("fastnn", "torch", "sklearn", "reference")
#: The speed issue's goals: fastnn's speed-up over PyTorch CPU in the same run.
GOALS = {"A": 20.0, "B": 6.0, "C": 1.2, "D": 50.0}


def epoch_gflop(cfg, n):
    """Dense-equivalent GFLOP of one epoch of ``n`` samples: per layer of fan-in ``a`` and
    fan-out ``b``, 2ab for the forward pass, 2ab for the weight gradient and 2ab for the
    delta of the layer below (none below the first layer)."""
    sizes = cfg["sizes"]
    per_sample = sum((6 if l > 0 else 4) * a * b
                     for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
    return n * per_sample / 1e9


def load_data(n):
    try:
        from fastnn.datasets import load_mnist
        (X, y), _, _ = load_mnist(download=False)
        return X[:n], y[:n], "MNIST"
    except Exception as exc:  # no data here: MNIST-shaped synthetic data
        print(f"MNIST not available ({exc}); using synthetic data", file=sys.stderr)
        rng = np.random.default_rng(0)
        X = rng.random((n, 784), dtype=np.float32)
        X[X < 0.81] = 0
        return X, rng.integers(0, 10, n), "synthetic"


def sgemm_gflops(size=2048, repeat=5):
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * size ** 3 / best / 1e9


def cpu_model():
    """``", <model name>, <widest SIMD>"`` from ``/proc/cpuinfo`` (Linux), else ""."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return ""
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                 if ln.startswith("model name")), "")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return "".join(f", {x}" for x in (name, simd) if x)


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def time_fastnn(cfg, X, y):
    import fastnn as fnn
    net = fnn.Network(cfg["sizes"], hidden=cfg["hidden"], output=cfg["output"],
                      cost=cfg["cost"], dtype="float32", seed=0)
    kw = dict(batch_size=cfg["batch"], progress=False)
    net.fit(X[:2000], y[:2000], epochs=1, optimizer=fnn.SGD(cfg["lr"], momentum=cfg["momentum"]), **kw)
    opt = fnn.SGD(cfg["lr"], momentum=cfg["momentum"])
    return _timed(lambda: net.fit(X, y, epochs=1, optimizer=opt, **kw))


def time_torch(cfg, X, y):
    import torch
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[cfg["hidden"]]
    layers = []
    for i, (n, m) in enumerate(zip(cfg["sizes"][:-1], cfg["sizes"][1:])):
        layers.append(torch.nn.Linear(n, m))
        if i < len(cfg["sizes"]) - 2:
            layers.append(act())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"])
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    if cfg["cost"] == "quadratic":
        T = torch.nn.functional.one_hot(yt, cfg["sizes"][-1]).float()

        def loss_fn(out, idx):   # Nielsen: mean over samples of 0.5*||sigmoid(z) - t||^2
            return 0.5 * ((torch.sigmoid(out) - T[idx]) ** 2).sum(1).mean()
    else:
        ce = torch.nn.CrossEntropyLoss()

        def loss_fn(out, idx):
            return ce(out, yt[idx])
    b = cfg["batch"]

    def epoch(n):
        perm = torch.randperm(n)
        for s in range(0, n, b):
            idx = perm[s:s + b]
            opt.zero_grad()
            loss_fn(model(Xt[idx]), idx).backward()
            opt.step()

    epoch(min(2000, len(X)))
    return _timed(lambda: epoch(len(X)))


def time_sklearn(cfg, X, y):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    act = {"sigmoid": "logistic", "relu": "relu"}[cfg["hidden"]]
    clf = MLPClassifier(hidden_layer_sizes=cfg["sizes"][1:-1], activation=act, solver="sgd",
                        batch_size=cfg["batch"], learning_rate_init=cfg["lr"],
                        momentum=cfg["momentum"], nesterovs_momentum=False, alpha=0.0,
                        max_iter=1, shuffle=True, random_state=0, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return _timed(lambda: clf.fit(X, y))


def time_reference(cfg, X, y, samples):
    import fastnn as fnn
    from fastnn import reference as ref
    net = fnn.Network(cfg["sizes"], hidden=cfg["hidden"], output=cfg["output"],
                      cost=cfg["cost"], dtype="float64", seed=0)
    n = min(samples, len(X))
    order = [np.random.default_rng(0).permutation(n)]
    t = _timed(lambda: ref.train_sgd(net.weights, net.biases, X[:n], y[:n], net.hidden,
                                     net.output, net.cost, order, cfg["batch"], cfg["lr"],
                                     cfg["momentum"]))
    return t * len(X) / n


_CHILD = r"""
import hashlib, json, os, sys, threading, time
t0 = time.perf_counter()
import numpy as np
import fastnn as fnn
from fastnn.datasets import load_mnist
cfg = json.loads(sys.argv[1])
(X, y), _, _ = load_mnist(download=False)
X, y = X[:cfg["samples"]], y[:cfg["samples"]]

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) * 1024

def make():
    return fnn.Network(cfg["sizes"], hidden=cfg["hidden"], output=cfg["output"],
                       cost=cfg["cost"], dtype="float32", seed=0)

def fit(net, n):
    net.fit(X[:n], y[:n], epochs=1, batch_size=cfg["batch"], progress=False,
            optimizer=fnn.SGD(cfg["lr"], momentum=cfg["momentum"]))

fit(make(), len(X))                # compiles (or loads) the kernels: the first epoch
t_first = time.perf_counter()
peak, stop = [rss()], []
def sample():
    while not stop:
        peak.append(rss())
        time.sleep(0.005)
base = rss()
watcher = threading.Thread(target=sample, daemon=True)
watcher.start()
fit(make(), len(X))                # a second epoch, kernels loaded: its peak memory
stop.append(1)
watcher.join()
# A third for the time, apart: the sampling thread takes CPU time, which on two cores
# slowed the fits that use both (the first layer's halves, fastnn/kernels/halves.py).
net = make()
t1 = time.perf_counter()
fit(net, len(X))
t2 = time.perf_counter()
print(json.dumps({"import_to_first_epoch": t_first - t0, "epoch": t2 - t1,
                  "peak_extra_mb": (max(peak) - base) / 2**20, "data_mb": X.nbytes / 2**20,
                  "sha256": hashlib.sha256(net.params.tobytes()).hexdigest()}))
"""


def run_child(cfg, samples, env_extra):
    """One fresh process: import fastnn, load MNIST, train one epoch; returns its report."""
    import json
    import subprocess
    env = dict(os.environ, **env_extra)
    res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(dict(cfg, samples=samples))],
                         env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def extras(configs, samples):
    """Compile time (cold and warm cache), peak memory, and 1 vs 2 threads."""
    import tempfile
    lines = []
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        cold = run_child(CONFIGS["B"], samples, env)
        warm = run_child(CONFIGS["B"], samples, env)
    lines.append("| import to end of first epoch (config B) | empty cache | warm cache |")
    lines.append("|---|---|---|")
    lines.append(f"| seconds | {cold['import_to_first_epoch']:.1f} | "
                 f"{warm['import_to_first_epoch']:.1f} |")
    lines.append("")
    lines.append(f"Peak memory of `fit` beyond what the process held before it (config B, "
                 f"{samples} samples, X = {warm['data_mb']:.0f} MB): "
                 f"{warm['peak_extra_mb']:.1f} MB.")
    lines.append("")
    lines.append("Threads: `NUMBA_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and `OMP_NUM_THREADS` "
                 "all set to 1, then 2, each in a fresh process (times include no compile). "
                 "fastnn gives the same bits on any thread count: where a config uses "
                 "BLAS (batch >= 48: C), a batch is cut into parts of about 128 rows that "
                 "Numba's threads compute at once, each on one OpenBLAS thread, and the "
                 "parts' gradients are added in order.")
    lines.append("")
    lines.append("| config | 1 thread s/epoch | 2 threads s/epoch | weights bitwise equal |")
    lines.append("|---|---|---|---|")
    for c in configs:
        r = {}
        for t in (1, 2):
            r[t] = run_child(CONFIGS[c], samples, {"NUMBA_NUM_THREADS": str(t),
                                                   "OPENBLAS_NUM_THREADS": str(t),
                                                   "OMP_NUM_THREADS": str(t)})
        lines.append(f"| {c} | {r[1]['epoch']:.3f} | {r[2]['epoch']:.3f} | "
                     f"{'yes' if r[1]['sha256'] == r[2]['sha256'] else 'NO'} |")
    return "\n".join(lines)


def inference(X):
    """predict_proba throughput, fastnn vs PyTorch, for 1 sample and for 10,000 (784-100-10)."""
    import timeit

    import torch

    import fastnn as fnn
    torch.set_num_threads(os.cpu_count())
    net = fnn.Network([784, 100, 10], seed=0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(),
                                torch.nn.Linear(100, 10), torch.nn.Softmax(dim=1))
    lines = ["| predict_proba, 784-100-10 | fastnn | PyTorch (no_grad) | speed-up |",
             "|---|---|---|---|"]
    for n in (1, 10_000):
        x, xt = X[:n], torch.from_numpy(X[:n])
        net.predict_proba(x)

        def torch_call():
            with torch.no_grad():
                return model(xt).numpy()

        torch_call()
        reps = 2000 if n == 1 else 20
        tf = min(timeit.repeat(lambda: net.predict_proba(x), number=reps, repeat=3)) / reps
        tt = min(timeit.repeat(torch_call, number=reps, repeat=3)) / reps
        unit = "us/call" if n == 1 else "ms/call"
        k = 1e6 if n == 1 else 1e3
        lines.append(f"| {n} sample{'s' if n > 1 else ''} | {tf * k:.1f} {unit} | "
                     f"{tt * k:.1f} {unit} | {tt / tf:.1f}x |")
    return "\n".join(lines)


def time_to_accuracy():
    """Wall time from process start to >= 98% MNIST test accuracy: fastnn's `fast` preset
    (scripts/train_mnist.py) beside PyTorch's 784-800-10 recipe, each in a fresh process."""
    import subprocess
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_mnist.py")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, script, "--no-progress"], capture_output=True,
                         text=True, check=True).stdout
    t_fastnn = time.perf_counter() - t
    acc_fastnn = float(out.strip().splitlines()[-1].split()[-1])
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _TORCH_RECIPE], capture_output=True,
                         text=True, check=True).stdout
    t_torch = time.perf_counter() - t
    acc_torch = float(out.strip().splitlines()[-1])
    return ("| to >= 98% test accuracy | wall s (process start to result) | test accuracy |\n"
            "|---|---|---|\n"
            f"| fastnn `python scripts/train_mnist.py` (784-300-10, batch 10, 4 epochs) | "
            f"{t_fastnn:.1f} | {acc_fastnn:.4f} |\n"
            f"| PyTorch 784-800-10 relu, SGD 0.1/0.9, batch 64, 7 epochs | {t_torch:.1f} | "
            f"{acc_torch:.4f} |\n\nfastnn is {t_torch / t_fastnn:.1f}x faster to 98%.")


_TORCH_RECIPE = r"""
import os, torch, numpy as np
from fastnn.datasets import load_mnist
torch.set_num_threads(os.cpu_count()); torch.manual_seed(0)
(X, y), _, (Xt, yt) = load_mnist(download=False)
X, y, Xt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xt)
model = torch.nn.Sequential(torch.nn.Linear(784, 800), torch.nn.ReLU(), torch.nn.Linear(800, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss = torch.nn.CrossEntropyLoss()
for epoch in range(7):
    perm = torch.randperm(len(X))
    for s in range(0, len(X), 64):
        idx = perm[s:s + 64]
        opt.zero_grad(); loss(model(X[idx]), y[idx]).backward(); opt.step()
with torch.no_grad():
    print((model(Xt).argmax(1).numpy() == yt).mean())
"""


def bar_chart(rows, peers, path):
    """PNG of fastnn's speed-up over each peer, per configuration (needs matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    others = [q for q in peers if q != "fastnn"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(others), 1)
    for k, q in enumerate(others):
        xs = [i + k * width for i in range(len(rows))]
        ax.bar(xs, [t[q] / t["fastnn"] for _, _, t in rows], width, label=f"vs {q}")
    ax.set_xticks([i + width * (len(others) - 1) / 2 for i in range(len(rows))])
    ax.set_xticklabels([f"{c} (batch {cfg['batch']})" for c, cfg, _ in rows])
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_ylabel("fastnn speed-up (x, log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="A,B,C,D", help="comma-separated, from A,B,C,D")
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated, from " + ",".join(PEERS))
    p.add_argument("--samples", type=int, default=50_000, help="samples per epoch")
    p.add_argument("--reference-samples", type=int, default=5_000,
                   help="samples the NumPy reference is timed on (scaled to --samples)")
    p.add_argument("--repeat", type=int, default=2,
                   help="epochs timed for fastnn and torch, in turns; the best is kept")
    p.add_argument("--extras", action="store_true",
                   help="also measure compile time, peak memory, 1 vs 2 threads, inference "
                        "throughput and time to 98%% MNIST accuracy")
    p.add_argument("--write", action="store_true",
                   help="write docs/benchmarks.md (and docs/benchmarks.png with matplotlib)")
    args = p.parse_args(argv)
    configs = [c.strip().upper() for c in args.configs.split(",")]
    peers = [q.strip() for q in args.peers.split(",")]
    for c in configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c!r}; choose from {','.join(CONFIGS)}")
    for q in peers:
        if q not in PEERS:
            p.error(f"unknown peer {q!r}; choose from {','.join(PEERS)}")

    X, y, source = load_data(args.samples)
    gflops = sgemm_gflops()
    rows = []
    for c in configs:
        cfg = CONFIGS[c]
        times = {}
        # fastnn and PyTorch take turns, epoch by epoch (best of --repeat each): on a
        # shared machine the load drifts over minutes, and timing one peer's epochs
        # all before the other's put the drift into their ratio.
        paired = [q for q in peers if q in ("fastnn", "torch")]
        best = {q: float("inf") for q in paired}
        for _ in range(args.repeat):
            for q in paired:
                fn = {"fastnn": time_fastnn, "torch": time_torch}[q]
                best[q] = min(best[q], fn(cfg, X, y))
        for q in peers:
            if q in best:
                times[q] = best[q]
            elif q == "reference":
                times[q] = time_reference(cfg, X, y, args.reference_samples)
            else:
                times[q] = time_sklearn(cfg, X, y)
            print(f"{c} {q:9s} {times[q]:8.3f} s", file=sys.stderr, flush=True)
        rows.append((c, cfg, times))

    goals = "fastnn" in peers and "torch" in peers
    head = "| config | layers | hidden / output | batch | lr, momentum | " + " | ".join(
        f"{q} s/epoch" for q in peers) + " | " + " | ".join(
        f"vs {q}" for q in peers if q != "fastnn") + " |"
    ncols = 5 + len(peers) + len(peers) - 1
    if goals:
        head += " goal vs torch | fastnn GFLOP/s |"
        ncols += 2
    lines = [head, "|" + "---|" * ncols]
    for c, cfg, t in rows:
        ratios = [f"{t[q] / t['fastnn']:.1f}x" if "fastnn" in t else "-" for q in peers
                  if q != "fastnn"]
        line = (f"| {c} | {'-'.join(map(str, cfg['sizes']))} | {cfg['hidden']} / "
                f"{cfg['output']}, {cfg['cost']} | {cfg['batch']} | {cfg['lr']}, "
                f"{cfg['momentum']} | " + " | ".join(f"{t[q]:.3f}" for q in peers)
                + " | " + " | ".join(ratios) + " |")
        if goals:
            met = "met" if t["torch"] / t["fastnn"] >= GOALS[c] else "not met"
            line += (f" {GOALS[c]:g}x ({met}) | "
                     f"{epoch_gflop(cfg, args.samples) / t['fastnn']:.0f} |")
        lines.append(line)
    table = "\n".join(lines)
    cmd = "python scripts/compare_peers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    info = (f"{date.today()}, {os.cpu_count()} cores ({platform.machine()}{cpu_model()}), "
            f"{source} data, {args.samples} samples per epoch, float32; "
            f"numpy sgemm {gflops:.0f} GFLOP/s")
    print(table)
    print(info)
    more = ""
    if args.extras:
        more = "\n\n".join([extras(configs, args.samples), inference(X), time_to_accuracy()])
    if more:
        print(more)
    if args.write:
        png = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.png")
        try:
            bar_chart(rows, peers, png)
            chart = "\n![speed-ups](benchmarks.png)\n"
        except ImportError:
            chart = ""
        path = os.path.join(os.path.dirname(__file__), "..", "docs", "benchmarks.md")
        kept = _sections_of_others(path)
        with open(path, "w") as f:
            f.write("# Benchmarks\n\nOne training epoch, seconds (lower is better), and "
                    "fastnn's speed-up over each peer measured in the same run. Produced by\n\n"
                    f"```\n{cmd.strip()}\n```\n\n{info}.\n\n{table}\n\n"
                    "sklearn's MLPClassifier always uses a softmax output with log-loss, so in "
                    "config A it runs that output instead of sigmoid/quadratic. The NumPy "
                    f"reference is timed on {args.reference_samples} samples and scaled. "
                    "fastnn GFLOP/s is the dense-equivalent work of an epoch (6ab per "
                    "sample for each a-by-b layer, 4ab for the first, which needs no "
                    "delta below it) over fastnn's time; fastnn does less work than that: "
                    "below a batch of 48 it skips the zero pixels, from 48 on the pixel "
                    "columns that are zero in a whole part of the batch (about a third on "
                    "MNIST).\n"
                    + chart + ("\n## Compile time, memory, threads, inference, time to "
                               "accuracy\n\n" + more + "\n"
                               if more else "") + kept)
    return 0


#: the sections of docs/benchmarks.md this script writes; others (scripts/bench_sklearn.py's)
#: are kept as they are
OWN_SECTIONS = ("## Compile time, memory, threads, inference, time to accuracy",)


def _sections_of_others(path):
    """The "## " sections of ``path`` that this script does not write, as one string
    (each preceded by a blank line), or "" if there are none."""
    if not os.path.exists(path):
        return ""
    parts, current = [], None
    for line in open(path).read().splitlines(keepends=True):
        if line.startswith("## "):
            current = None if line.rstrip("\n") in OWN_SECTIONS else []
            if current is not None:
                parts.append(current)
        if current is not None:
            current.append(line)
    return "".join("\n" + "".join(part).rstrip("\n") + "\n" for part in parts)


if __name__ == "__main__":
    sys.exit(main())
