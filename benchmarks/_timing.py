"""The timing helpers shared by the benchmark scripts (imported from their own folder)."""

import importlib
import time


def timed(f, repeats: int = 3, summary=min) -> float:
    """Seconds taken by f(), summarised over repeats (the best by default, or e.g. np.median)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return float(summary(times))


class Wrapped:
    """Seconds spent in functions of lmmbook's modules, and a summary of what they returned, by
    wrapping them for the duration of a with block (benchmark only; microseconds of overhead
    per call). ``targets`` maps a key to (module, function name, summary of the result or None)."""

    def __init__(self, **targets):
        self.targets = {key: (importlib.import_module(module), name)
                        for key, (module, name, _) in targets.items()}
        self.summaries = {key: summary for key, (_, _, summary) in targets.items()}
        self.seconds = dict.fromkeys(self.targets, 0.0)
        self.results = {key: [] for key in self.targets}

    def __enter__(self):
        self.original = {k: getattr(m, f) for k, (m, f) in self.targets.items()}
        for key, (module, name) in self.targets.items():
            setattr(module, name, self._wrap(key, self.original[key]))
        return self

    def _wrap(self, key, f):
        def wrapped(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = f(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - start
            if self.summaries[key] is not None:
                self.results[key].append(self.summaries[key](result))
            return result
        return wrapped

    def __exit__(self, *exc):
        for key, (module, name) in self.targets.items():
            setattr(module, name, self.original[key])
