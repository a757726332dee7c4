"""Step-time summaries shared by the speed benchmarks (standard library and NumPy only: the PyTorch runner uses it)."""

import statistics

import numpy as np


def summary(times: list[float], batch_size: int, rate_of: str = "median") -> dict:
    """Examples/s from per-step times in seconds: from the median step (default) or the mean; with the spread."""
    median, mean = statistics.median(times), statistics.fmean(times)
    step = median if rate_of == "median" else mean
    return {
        "examples_per_s": round(batch_size / step, 1),
        "mean_examples_per_s": round(batch_size / mean, 1),
        "median_step_ms": round(1e3 * median, 2),
        "p10_step_ms": round(1e3 * float(np.percentile(times, 10)), 2),
        "p90_step_ms": round(1e3 * float(np.percentile(times, 90)), 2),
    }
