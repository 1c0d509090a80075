import pytest

from resattn import build_model


@pytest.fixture(scope="session")
def built():
    """build_model with a cache, so each network is built once per test session."""
    cache = {}

    def get(**options):
        key = tuple(sorted(options.items()))
        if key not in cache:
            cache[key] = build_model(**options)
        return cache[key]

    return get
