"""fastnn's plain-NumPy reference (``fastnn.reference``, float64) on the same cases as
``epochs`` and ``predict``, and fastnn's speed-up over it.

The reference is far slower, so its epoch runs on a slice of the 50,000 samples
(``common.REF_SAMPLES``: 10,000 for A and B, 4,000 for C, 1,000 for D; ~0.5 s each) and
fastnn's speed-up is measured on that same slice, both in the same process.
"""
import time

from . import common


def _best(run, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


class ReferenceEpoch:
    params = [list(common.CONFIGS)]
    param_names = ["config"]
    number = 1
    repeat = (2, 5, 5.0)
    warmup_time = 0
    timeout = 600

    def setup(self, config):
        self.reference = common.reference_epoch_case(config)
        self.fastnn = common.fastnn_slice_case(config)

    def time_reference_epoch(self, config):
        """The reference's epoch over ``REF_SAMPLES[config]`` samples."""
        self.reference()

    def track_speedup(self, config):
        """Reference time / fastnn time for one epoch over the same slice (best of 2 and
        of 5 runs)."""
        return _best(self.reference, 2) / _best(self.fastnn, 5)

    track_speedup.unit = "x"


class ReferencePredict:
    params = [["A", "B", "C"]]
    param_names = ["config"]
    number = 1
    repeat = (3, 10, 3.0)
    warmup_time = 0
    timeout = 600

    def setup(self, config):
        self.reference = common.reference_predict_case(config)
        self.fastnn = common.predict_case(config, common.REF_PREDICT_ROWS)

    def time_reference_predict(self, config):
        """The reference's forward pass over ``REF_PREDICT_ROWS`` rows."""
        self.reference()

    def track_speedup(self, config):
        """Reference time / fastnn time to predict the same rows (best of 3 and of 5)."""
        return _best(self.reference, 3) / _best(self.fastnn, 5)

    track_speedup.unit = "x"
