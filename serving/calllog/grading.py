"""Grades that need no model: a user's verdict, or a program that checks the answer.

Both write through ``CallLogStore.set_grade``, so a grade set here shows up
in the next export and retraining. A judge model that grades free text
belongs elsewhere: it makes network calls and costs money, and can be built
on the same two store methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

from router_model.calls import GradedCall
from router_model.errors import InvalidInputError
from serving.calllog.store import CallLogStore

USER_GRADER = "user"
VALIDATOR_PREFIX = "validator:"

Validator = Callable[[GradedCall], float | None]
"""Grades one call in [0, 1], or returns None when it cannot tell."""


def apply_feedback(
    store: CallLogStore, request_id: str, grade: float, model: str | None = None
) -> int:
    """Record a user's grade for a request; returns how many logged calls it updated.

    Zero means no call with that ``request_id`` is in the store yet (feedback
    can arrive before the writer has flushed the call); callers may retry.
    """
    if not request_id:
        raise InvalidInputError("must be a non-empty string", "request_id")
    return store.set_grade(request_id, grade, USER_GRADER, model=model)


def answer_text(call: GradedCall) -> str | None:
    """The answer a call produced, when the logger recorded it in ``extra["answer"]``."""
    answer = call.extra.get("answer")
    return answer if isinstance(answer, str) else None


def grade_with_validator(
    store: CallLogStore,
    name: str,
    fn: Validator,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Grade every ungraded call that carries an answer; returns how many calls were graded.

    Grades are set with grader ``validator:<name>`` per ``(request_id, model)``,
    the unit ``set_grade`` addresses. Calls that already have a grade are not
    validated again, so a second run, or a run after a user's feedback, leaves
    them alone. Validator results are collected before any grade is written,
    so an exception in ``fn`` leaves the store as it was.
    """
    if not name:
        raise InvalidInputError("validator name must be non-empty", "name")
    grader = VALIDATOR_PREFIX + name
    grades: dict[tuple[str, str], float] = {}
    for call in store.iter_calls(since=since, until=until):
        if call.grade is not None or answer_text(call) is None:
            continue
        grade = fn(call)
        if grade is None:
            continue
        if isinstance(grade, bool) or not math.isfinite(grade) or not 0.0 <= grade <= 1.0:
            raise InvalidInputError(
                f"validator {name!r} returned {grade!r} for request {call.request_id!r}; "
                "grades must be in [0, 1]"
            )
        grades[(call.request_id, call.model)] = float(grade)
    return sum(
        store.set_grade(request_id, grade, grader, model=model)
        for (request_id, model), grade in grades.items()
    )
