#!/usr/bin/env python
"""Train a small grid of MNIST networks, or an ensemble of seeds, on a Dask cluster.

Needs the dask extra (``pip install "fastnn[dask]"``). MNIST is read from
``$FASTNN_DATA``, else the cache ``~/.cache/fastnn/mnist``, else downloaded. Usage (from
the repository root)::

    python scripts/sweep.py                              # a LocalCluster, one worker per core
    python scripts/sweep.py --workers 2 --epochs 3 --limit 20000
    python scripts/sweep.py --scheduler tcp://10.0.0.5:8786   # a running cluster
    python scripts/sweep.py --seeds 8                    # an ensemble of 8 seeds instead

The grid is hidden sizes (30, 100, 100-100) x learning rates (0.02, 0.1) of relu/softmax
networks trained with SGD (momentum 0.9, batch 32); each network is trained once, on one
worker, and is bitwise the one ``fastnn.Network(...).fit(...)`` would give here. The
script prints one line per network (validation and test accuracy) and the best.

A local cluster's workers each run one network at a time on one Numba thread
(``NUMBA_NUM_THREADS=1``), so the cores are not oversubscribed; a remote cluster's
workers are started as in README "Scaling out" (``dask worker ... --nthreads 1``).
"""
import argparse
import os
import time

import numpy as np

import fastnn as fnn


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler "
                        "(default: start a LocalCluster)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes of the LocalCluster (default: the cores)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per network (2)")
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N of the 50,000 training images")
    parser.add_argument("--seeds", type=int, default=0,
                        help="train an ensemble of this many seeds (784-100-10) instead "
                        "of the grid")
    parser.add_argument("--data", default=None, help="folder of the MNIST files "
                        "(default: $FASTNN_DATA, the cache, or download)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.epochs < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--workers, --epochs and --limit must be >= 1")
    return args


def grid():
    specs = []
    for hidden in ([30], [100], [100, 100]):
        for lr in (0.02, 0.1):
            specs.append({"sizes": [784, *hidden, 10], "hidden": "relu", "seed": 0,
                          "fit": {"optimizer": fnn.SGD(lr=lr, momentum=0.9)}})
    return specs


def describe(spec):
    text = "-".join(map(str, spec["sizes"])) + f" seed {spec['seed']}"
    if "fit" in spec:
        text += f" lr {spec['fit']['optimizer'].lr}"
    return text


def main(argv=None):
    args = parse_args(argv)
    from dask.distributed import Client, LocalCluster

    from fastnn.distributed import fit_many

    (X, y), (Xv, yv), (Xt, yt) = fnn.datasets.load_mnist(args.data)
    if args.limit is not None:
        X, y = X[:args.limit], y[:args.limit]
    if args.seeds:
        specs = [{"sizes": [784, 100, 10], "hidden": "relu", "seed": s}
                 for s in range(args.seeds)]
    else:
        specs = grid()
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1,
                               processes=True, dashboard_address=None,
                               env={"NUMBA_NUM_THREADS": "1"})
        client = Client(cluster)
    try:
        n_workers = len(client.scheduler_info()["workers"])
        print(f"{len(specs)} networks, {X.shape[0]} training images, {args.epochs} epochs, "
              f"on {n_workers} workers ({client.scheduler.address})", flush=True)
        t0 = time.perf_counter()
        nets, hists = fit_many(client, specs, X, y, return_history=True, errors="return",
                               epochs=args.epochs, batch_size=32,
                               optimizer=fnn.SGD(lr=0.05, momentum=0.9),
                               validation_data=(Xv, yv))
        wall = time.perf_counter() - t0
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    width = max(len(describe(s)) for s in specs)
    rows = []
    for spec, net, hist in zip(specs, nets, hists):
        if hist is None:
            print(f"{describe(spec):<{width}}  failed: {net}")
            continue
        val = hist.history["val_accuracy"][-1]
        test = net.evaluate(Xt, yt)["accuracy"]
        train_s = sum(hist.history["seconds"])
        rows.append((val, test, spec, net))
        print(f"{describe(spec):<{width}}  val {val:.4f}  test {test:.4f}  "
              f"trained in {train_s:.1f} s")
    print(f"wall time {wall:.1f} s (networks' training time summed: "
          f"{sum(sum(h.history['seconds']) for h in hists if h is not None):.1f} s)")
    if args.seeds and len(rows) == len(specs):
        ens = fnn.Ensemble(len(specs), [784, 100, 10], hidden="relu",
                           seeds=[s["seed"] for s in specs])
        ens.members = nets
        print(f"ensemble of {len(specs)}: test accuracy "
              f"{ens.evaluate(Xt, yt)['accuracy']:.4f} (members: "
              f"{np.mean([r[1] for r in rows]):.4f} on average)")
    elif rows:
        val, test, spec, _ = max(rows, key=lambda r: r[0])
        print(f"best by validation accuracy: {describe(spec)}  val {val:.4f}  "
              f"test {test:.4f}")


if __name__ == "__main__":
    main()
