from collections.abc import Iterator

import pytest

from go_async import WaitLog, set_testing


@pytest.fixture(autouse=True)
def _no_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose STAGE themselves; the caller's environment must not leak in."""
    monkeypatch.delenv("STAGE", raising=False)


@pytest.fixture
def waits() -> Iterator[WaitLog]:
    """Instant, recorded backoff waits with seeded jitter."""
    with set_testing(seed=0) as log:
        yield log
