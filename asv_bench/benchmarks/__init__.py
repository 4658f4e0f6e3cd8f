"""fastnn's asv benchmark suite (see ../asv.conf.json and the README's "Benchmarks" section)."""
