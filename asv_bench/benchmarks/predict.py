"""Inference: ``Network.predict_proba`` on 1, 100 and 10,000 MNIST-like rows (float32)
for the networks of configurations A-C (D is B's network). Throughput is rows / time."""
from . import common


class Predict:
    params = [["A", "B", "C"], [1, 100, 10_000]]
    param_names = ["config", "rows"]
    repeat = (5, 20, 2.0)
    timeout = 600

    def setup(self, config, rows):
        self.run = common.predict_case(config, rows)

    def time_predict_proba(self, config, rows):
        self.run()
