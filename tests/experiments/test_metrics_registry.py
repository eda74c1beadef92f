"""The registry names every metric once, with a function (or the method itself) behind it."""
import experiments.metrics as metrics


def test_registry_covers_every_method_and_metric():
    assert set(metrics.METRICS) == {"raw_weights", "gradient_ascent", "occlusion", "top_patches"}
    names = {m for ms in metrics.METRICS.values() for m in ms}
    assert names == set(metrics.FUNCTIONS) == set(metrics.BETTER)
    assert all(callable(f) for n, f in metrics.FUNCTIONS.items() if n != "activation")
    assert all(len(ms) == len(set(ms)) for ms in metrics.METRICS.values())
    assert all(f.__doc__ for f in metrics.FUNCTIONS.values() if f is not None)
