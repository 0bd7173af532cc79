"""Training-quality benchmark: does loss feedback make training robust to the base LR?

Real tasks from bundled data (:mod:`benchmarks.quality.tasks`), each schedule used
the way a user would (:mod:`benchmarks.quality.schedules`), one run measured
(:mod:`benchmarks.quality.training`), tables and a plot (:mod:`benchmarks.quality.report`).
Run ``python -m benchmarks.quality --help``.
"""
