"""Bounded JMESPath evaluation: the expressions come from the pod author (volumeAttributes override
SecretProviderClass parameters), so the work one Mount's expressions may cost is bounded.

JMESPath values share structure: `[@, @]` is a list holding the same value twice, so
`a | [@, @] | [@, @] | ...` written 30 times is a 30-node graph standing for 2^30 nodes, built in
microseconds, and whatever walks it in full (`to_string`, `==`, sorting, writing the result as a
JSON file) runs for hours in ever more memory. Likewise `join('', [@, @])` piped 30 times doubles
a string 30 times. So every step of an evaluation is charged to the Mount's budget of steps:
each result's own size (a list's or map's length, a string's length / 16) and, before a step that
walks values in full, their size with shared parts counted each time they appear. Past the budget
the Mount fails with INVALID_ARGUMENT naming the flag that sets it.
"""

from __future__ import annotations

from typing import Any

import jmespath
from jmespath import functions, visitor

#: characters of a string that cost one step (a step is about one list slot or map entry)
_CHARS_PER_STEP = 16
#: functions that walk their arguments in full (compare, serialise or sort them)
_DEEP_FUNCTIONS = frozenset({"to_string", "contains", "sort", "sort_by", "max", "min", "max_by",
                             "min_by", "merge"})


class BudgetExceeded(Exception):
    """The expressions of one Mount need more steps than its budget allows."""


class Budget:
    """Steps left for the JMESPath expressions of one Mount (shared by all its entries)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.remaining = steps

    def charge(self, steps: int) -> None:
        self.remaining -= steps
        if self.remaining < 0:
            raise BudgetExceeded()

    def charge_in_full(self, value: Any) -> None:
        """Charge what walking `value` in full costs, refusing before the walk when too much."""
        self.charge(expanded_size(value, self.remaining + 1))


def _own_size(value: Any) -> int:
    if isinstance(value, list | dict):
        return 1 + len(value)
    if isinstance(value, str):
        return 1 + len(value) // _CHARS_PER_STEP
    return 1


def expanded_size(value: Any, limit: int) -> int:
    """The steps `value` stands for, shared parts counted each time they appear; the walk visits
    each distinct list or map once and stops as soon as the count passes `limit`."""
    sizes: dict[int, int] = {}
    pending: list[tuple[Any, bool]] = [(value, False)]
    while pending:
        node, children_done = pending.pop()
        if not isinstance(node, list | dict) or id(node) in sizes:
            continue
        items = list(node.values()) if isinstance(node, dict) else node
        if not children_done:
            pending.append((node, True))
            pending.extend((item, False) for item in items if isinstance(item, list | dict))
            continue
        total = _own_size(node) + sum(
            sizes[id(item)] if isinstance(item, list | dict) else _own_size(item)
            for item in items)
        if total > limit:
            return total
        sizes[id(node)] = total
    return sizes[id(value)] if isinstance(value, list | dict) else _own_size(value)


class _BoundedFunctions(functions.Functions):
    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    def call_function(self, function_name: str, resolved_args: list[Any]) -> Any:
        if function_name in _DEEP_FUNCTIONS:
            for argument in resolved_args:
                if not isinstance(argument, visitor._Expression):
                    self.budget.charge_in_full(argument)
        return super().call_function(function_name, resolved_args)


class _BoundedInterpreter(visitor.TreeInterpreter):
    def __init__(self, budget: Budget) -> None:
        super().__init__(jmespath.Options(custom_functions=_BoundedFunctions(budget)))
        self.budget = budget

    def visit(self, node: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        result = super().visit(node, *args, **kwargs)
        self.budget.charge(_own_size(result))
        return result

    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        compare = self.COMPARATOR_FUNC[node["value"]]
        if node["value"] not in self._EQUALITY_OPS:
            # Ordering: two numbers or two strings; anything else is null, as the JMESPath
            # specification (and go-jmespath, the official provider's) says. jmespath itself
            # lets a string and a number through to Python's `<`, which raises TypeError.
            if _orderable(left) and _orderable(right) and (
                    isinstance(left, str) == isinstance(right, str)):
                return compare(left, right)
            return None
        self.budget.charge_in_full(left)
        self.budget.charge_in_full(right)
        return compare(left, right)


def _orderable(item: Any) -> bool:
    """A number (not a boolean) or a string: what an ordering comparison may compare."""
    return isinstance(item, (int, float, str)) and not isinstance(item, bool)


def search(expression: str, document: Any, budget: Budget) -> Any:
    """`jmespath.search(expression, document)`, charged to `budget` (BudgetExceeded past it)."""
    parsed = jmespath.compile(expression)
    return _BoundedInterpreter(budget).visit(parsed.parsed, document)
