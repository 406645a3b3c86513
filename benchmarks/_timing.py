"""The timing helper shared by the benchmark scripts (imported from their own folder)."""

import time


def timed(f, repeats: int = 3, summary=min) -> float:
    """Seconds taken by f(), summarised over repeats (the best by default, or e.g. np.median)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(summary(times))
