"""The size plans of the three modes (smoke, quick, full) and the keys of a row's cells."""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "Plan",
    "PLANS",
    "append_key",
    "pop_key",
    "cas_key",
    "get_key",
    "last_key",
    "LIST_FIRST",
    "LIST_WALK",
    "CONCURRENT",
    "CREATE",
    "expected_keys",
]

LIST_FIRST = "list.first"
LIST_WALK = "list.walk"
CONCURRENT = "concurrent"
CREATE = "create"


def append_key(length: int) -> str:
    """The cell key of W1 at ``length`` events."""
    return f"append@{length}"


def pop_key(length: int) -> str:
    """The cell key of W1b's ``pop_event`` at ``length`` events."""
    return f"pop@{length}"


def cas_key(length: int) -> str:
    """The cell key of W1b's compare-and-set append at ``length`` events."""
    return f"cas@{length}"


def get_key(length: int) -> str:
    """The cell key of W2 (every event) at ``length`` events."""
    return f"get@{length}"


def last_key(last_n: int, length: int) -> str:
    """The cell key of W2 (``last_n``) at ``length`` events."""
    return f"last{last_n}@{length}"


def expected_keys(plan: Plan) -> list[str]:
    """Every cell key a subject's row has under ``plan``, in table order."""
    keys = [append_key(length) for length in plan.append_lengths]
    keys += [pop_key(length) for length in plan.append_lengths]
    keys += [cas_key(length) for length in plan.append_lengths]
    keys += [get_key(length) for length in plan.read_lengths]
    keys += [last_key(plan.last_n, length) for length in plan.read_lengths]
    return [*keys, LIST_FIRST, LIST_WALK, CONCURRENT, CREATE]


@dataclass(frozen=True)
class Plan:
    """The sizes of one mode; ``*_budget`` is in seconds per cell (see :mod:`benchmarks.timing`)."""

    mode: str
    append_lengths: tuple[int, ...]
    append_samples: int
    append_budget: float
    append_minimum: int
    read_lengths: tuple[int, ...]
    read_samples: int
    read_budget: float
    read_minimum: int
    last_n: int
    list_users: int
    list_sessions: int
    list_others: int
    page_size: int
    list_samples: int
    list_budget: float
    list_minimum: int
    writers: int
    appends_per_writer: int
    concurrent_runs: int
    creates: int
    create_budget: float

    @classmethod
    def for_mode(cls, mode: str) -> Plan:
        """The plan of ``smoke``, ``quick`` or ``full``."""
        return PLANS[mode]


QUICK = Plan(
    mode="quick",
    append_lengths=(10, 1_000, 10_000),
    append_samples=200,
    append_budget=4.0,
    append_minimum=30,
    read_lengths=(100, 1_000, 5_000, 10_000),
    read_samples=30,
    read_budget=1.5,
    read_minimum=3,
    last_n=20,
    list_users=10,
    list_sessions=1_000,
    list_others=50,
    page_size=50,
    list_samples=20,
    list_budget=1.5,
    list_minimum=3,
    writers=50,
    appends_per_writer=20,
    concurrent_runs=1,
    creates=200,
    create_budget=3.0,
)

PLANS: dict[str, Plan] = {
    "smoke": replace(
        QUICK,
        mode="smoke",
        append_lengths=(10, 100),
        append_samples=20,
        append_budget=5.0,
        append_minimum=5,
        read_lengths=(10, 100),
        read_samples=5,
        read_budget=2.0,
        read_minimum=2,
        list_users=3,
        list_sessions=30,
        list_others=5,
        page_size=10,
        list_samples=3,
        list_budget=2.0,
        list_minimum=2,
        writers=5,
        appends_per_writer=4,
        creates=20,
        create_budget=2.0,
    ),
    "quick": QUICK,
    "full": replace(
        QUICK,
        mode="full",
        append_samples=1_000,
        append_budget=20.0,
        append_minimum=200,
        read_samples=200,
        read_budget=5.0,
        read_minimum=10,
        list_samples=100,
        list_budget=5.0,
        list_minimum=10,
        concurrent_runs=3,
        creates=1_000,
        create_budget=15.0,
    ),
}
