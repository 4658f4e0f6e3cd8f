"""Write the kept model files of ``tests/data`` and what they must give (``expected.json``).

Run once, by the fastnn version whose format the files keep (0.1.0, model format
versions 1 and 2, optimizer part version 1)::

    python tests/data/make_models.py            # refuses to overwrite the kept files
    python tests/data/make_models.py --out DIR  # a fresh set elsewhere, to compare

``tests/test_model_files.py`` reads the committed files with the version under test.
Do not re-run this script over them to make that test pass: a later version must read
what this one wrote. A new format version adds new files beside these.

Everything is seeded: the same fastnn writes the same arrays and metadata (the zip
members' time stamps aside).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

import fastnn as fnn

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ["plain_float32.npz", "plain_float64.npz", "prelu_batchnorm.npz", "ensemble.npz",
         "adam_state.npz"]


def data():
    """A small 3-class problem (training) and 6 rows to predict (both kept in the json)."""
    rng = np.random.default_rng(2024)
    X = np.round(rng.standard_normal((24, 4)), 3)
    y = rng.integers(0, 3, 24)
    X_new = np.round(rng.standard_normal((6, 4)), 3)
    return X, y, X_new


def digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def describe(net):
    return {"sizes": net.sizes, "hidden": net.hidden, "output": net.output,
            "cost": net.cost, "dtype": net.dtype.name, "seed": net.seed,
            "leaky_slope": net.leaky_slope, "epochs_trained": net.epochs_trained,
            "batch_norm": net.batch_norm}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=HERE, help="folder to write to (default: here)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite existing files (never for the kept ones)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    existing = [f for f in FILES + ["expected.json"]
                if os.path.exists(os.path.join(args.out, f))]
    if existing and not args.force:
        sys.exit(f"{args.out} already holds {', '.join(existing)}: these files are kept "
                 f"for format compatibility and must not be rewritten (use --out)")
    X, y, X_new = data()
    fit = dict(batch_size=4, progress=False)
    models = {}

    net = fnn.Network([4, 6, 3], hidden="tanh", output="softmax", dtype="float32", seed=1)
    net.fit(X, y, epochs=3, optimizer=fnn.SGD(lr=0.2, momentum=0.9), **fit)
    models["plain_float32.npz"] = net

    net = fnn.Network([4, 5, 4, 3], hidden=["leaky_relu", "sigmoid"], output="sigmoid",
                      dtype="float64", seed=2, leaky_slope=0.2, init="xavier")
    net.fit(X, y, epochs=3, optimizer=fnn.SGD(lr=0.5), l2=1e-3, **fit)
    models["plain_float64.npz"] = net

    net = fnn.Network([4, 6, 5, 3], hidden=["prelu", "elu"], batch_norm=[True, False],
                      dtype="float32", seed=3)
    net.fit(X, y, epochs=3, optimizer=fnn.Adam(lr=0.01), **fit)
    models["prelu_batchnorm.npz"] = net

    ens = fnn.Ensemble(3, [4, 5, 3], hidden="gelu", dtype="float64", seed=10)
    ens.fit(X, y, epochs=2, optimizer=fnn.SGD(lr=0.1, momentum=0.5), parallel=False, **fit)
    models["ensemble.npz"] = ens

    net = fnn.Network([4, 6, 3], hidden="relu", dtype="float64", seed=4)
    opt = fnn.Adam(lr=0.01, betas=(0.8, 0.99), amsgrad=True)
    net.fit(X, y, epochs=2, optimizer=opt, **fit)
    net.save(os.path.join(args.out, "adam_state.npz"), optimizer=opt)
    saved_step = int(opt.step[0])
    net.fit(X, y, epochs=1, optimizer=opt, **fit)       # what continuing must give
    after = net.params.copy()

    expected = {"written_by": f"fastnn {fnn.__version__}", "X": X.tolist(), "y": y.tolist(),
                "X_new": X_new.tolist(), "continue_fit": {"epochs": 1, **fit},
                "files": {}}
    for name, model in models.items():
        model.save(os.path.join(args.out, name))
    for name in FILES:
        model = fnn.load(os.path.join(args.out, name))
        with np.load(os.path.join(args.out, name), allow_pickle=False) as f:
            meta = json.loads(bytes(f["meta"]))
            params = f["params"]
        entry = {"format": meta["format"], "format_version": meta["format_version"],
                 "params_sha256": digest(params), "n_params": int(params.size),
                 "predict_proba": model.predict_proba(X_new).astype(float).tolist(),
                 "predict": model.predict(X_new).tolist()}
        if isinstance(model, fnn.Ensemble):
            entry["seeds"] = model.seeds
            entry["members"] = [describe(m) for m in model.members]
        else:
            entry["network"] = describe(model)
        if name == "adam_state.npz":
            entry["optimizer"] = {"repr": repr(opt), "step": saved_step,
                                  "params_after_continuing": after.tolist()}
        expected["files"][name] = entry
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    for name in FILES + ["expected.json"]:
        print(f"{name}: {os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
