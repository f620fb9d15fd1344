"""MT-bench judge scores (from RouteLLM's evals) as graded calls.

Source: the folder ``data/routellm/`` holding ``mt_bench_question.jsonl`` (80
two-turn questions) and ``mt_bench_judgements.jsonl`` (one GPT-4 judgement
per question, model and turn). ``src`` is that folder; a path to either file
in it is accepted too and means its folder.

This is the one bundled set whose grade is a score rather than pass/fail: a
judge score 1-10 becomes ``(score - 1) / 9``, so 1 maps to 0 and 10 to 1, and
the grader is ``judge:<judge model>``.

Turn 1 is a call whose prompt is the first question. Turn 2 is a call whose
``messages`` are the first question, the model's own first answer, and the
follow-up: that is what the model was sent. The first answer is not in the
question file; it is recovered from the judge prompt, which quotes the whole
conversation in FastChat's multi-turn template (a judgement that does not
quote it that way is an error, since the request could not be rebuilt). The
graded answer's length, also read from the judge prompt, gives the
``output_tokens`` estimate; it is left unset when a turn-1 judge prompt does
not follow the single-answer template. Since each model's turn-2 request
carries its own first answer, the two models' turn-2 calls are different
requests: their ``request_id`` names the model (``mt-bench-<q>-turn2-<model>``),
while turn 1 is one request answered by both.

A score of -1 is FastChat's mark for a judgement whose rating could not be
parsed; such rows carry no grade and are skipped (the bundled file has none).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_model.calls import GradedCall
from router_model.features import tokens_for_chars
from router_model.text import Message
from training.importers._common import (
    Where,
    fixed_time,
    jsonl_objects,
    ladder_models,
    open_text,
    require_str,
)

SOURCE = "mt-bench"
TIERS_FILE = "mt_bench.toml"
TIMESTAMP = fixed_time("2024-05-01T00:00:00+00:00")
QUESTIONS_FILE = "mt_bench_question.jsonl"
JUDGEMENTS_FILE = "mt_bench_judgements.jsonl"
FAILED_SCORE = -1
MIN_SCORE, MAX_SCORE = 1, 10
ANSWER_START = "[The Start of Assistant's Answer]\n"
ANSWER_END = "\n[The End of Assistant's Answer]"
CONVERSATION_START = "<|The Start of Assistant A's Conversation with User|>"
CONVERSATION_END = "<|The End of Assistant A's Conversation with User|>"


@dataclass(frozen=True)
class Question:
    category: str
    turns: tuple[str, str]


def iter_calls(src: Path, *, all_models: bool = False) -> Iterator[GradedCall]:
    """Calls of the ladder's models, or of every judged model with ``all_models``."""
    folder = src.parent if src.is_file() else src
    questions = read_questions(folder / QUESTIONS_FILE)
    wanted = None if all_models else frozenset(ladder_models(TIERS_FILE))
    path = folder / JUDGEMENTS_FILE
    with open_text(path) as handle:
        for where, obj in jsonl_objects(path, handle):
            call = _judgement_call(where, obj, questions)
            if call is not None and (wanted is None or call.model in wanted):
                yield call


def read_questions(path: Path) -> dict[int, Question]:
    """The question file is small (80 lines) and every judgement needs it."""
    questions: dict[int, Question] = {}
    with open_text(path) as handle:
        for where, obj in jsonl_objects(path, handle):
            question_id = _question_id(obj, where)
            if question_id in questions:
                raise where.error(f"duplicate question {question_id}", "question_id")
            turns = obj.get("turns")
            if (
                not isinstance(turns, list)
                or len(turns) < 2
                or not all(isinstance(t, str) and t for t in turns)
            ):
                raise where.error("must be a list of at least two non-empty strings", "turns")
            category = require_str(obj, "category", where)
            questions[question_id] = Question(category, (turns[0], turns[1]))
    return questions


def _judgement_call(
    where: Where, obj: dict[str, Any], questions: dict[int, Question]
) -> GradedCall | None:
    question_id = _question_id(obj, where)
    question = questions.get(question_id)
    if question is None:
        raise where.error(f"unknown question {question_id} (not in {QUESTIONS_FILE})")
    model = require_str(obj, "model", where)
    grade = _grade(obj.get("score"), where)
    if grade is None:
        return None
    turn = obj.get("turn")
    judge_prompt = require_str(obj, "user_prompt", where)
    if turn == 1:
        messages: Sequence[Message] = (Message("user", question.turns[0]),)
        answer = _between(judge_prompt, ANSWER_START, ANSWER_END)
    elif turn == 2:
        messages, answer = _second_turn(judge_prompt, question, where)
    else:
        raise where.error(f"must be 1 or 2, got {turn!r}", "turn")
    request_id = f"{SOURCE}-{question_id}-turn{turn}"
    if turn == 2:
        request_id += "-" + model.replace("/", "_")
    return GradedCall(
        request_id=request_id,
        timestamp=TIMESTAMP,
        model=model,
        prompt=messages[0].content if len(messages) == 1 else None,
        messages=tuple(messages) if len(messages) > 1 else (),
        input_tokens=tokens_for_chars(sum(len(m.content) for m in messages)),
        output_tokens=None if answer is None else tokens_for_chars(len(answer)),
        grade=grade,
        grader=f"judge:{_judge_model(obj, where)}",
        tags={"source": SOURCE, "category": question.category, "turn": str(turn)},
    )


def _second_turn(
    judge_prompt: str, question: Question, where: Where
) -> tuple[tuple[Message, ...], str]:
    """The conversation the model saw, and its second answer, from the quoted transcript."""
    first, second = question.turns
    conversation = _between(judge_prompt, CONVERSATION_START, CONVERSATION_END)
    head = f"\n\n### User:\n{first}\n\n### Assistant A:\n"
    middle = f"\n\n### User:\n{second}\n\n### Assistant A:\n"
    cut = -1 if conversation is None else conversation.find(middle, len(head))
    if conversation is None or not conversation.startswith(head) or cut < 0:
        raise where.error(
            "judge prompt does not quote this question's two-turn conversation", "user_prompt"
        )
    first_answer = conversation[len(head) : cut]
    second_answer = conversation[cut + len(middle) :].removesuffix("\n\n")
    messages = (
        Message("user", first),
        Message("assistant", first_answer),
        Message("user", second),
    )
    return messages, second_answer


def _between(text: str, start: str, end: str) -> str | None:
    """The text between the only ``start`` marker and the ``end`` marker after it."""
    if text.count(start) != 1:
        return None
    begin = text.index(start) + len(start)
    stop = text.find(end, begin)
    return None if stop < 0 else text[begin:stop]


def _grade(score: Any, where: Where) -> float | None:
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise where.error(f"must be a number, got {score!r}", "score")
    if score == FAILED_SCORE:
        return None
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise where.error(f"must be {MIN_SCORE}-{MAX_SCORE} (or -1), got {score!r}", "score")
    return (score - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


def _question_id(obj: dict[str, Any], where: Where) -> int:
    value = obj.get("question_id")
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"must be an integer, got {value!r}", "question_id")
    return value


def _judge_model(obj: dict[str, Any], where: Where) -> str:
    """``judge`` is ``[model, template]`` in FastChat's output."""
    judge = obj.get("judge")
    if not isinstance(judge, list) or not judge or not isinstance(judge[0], str) or not judge[0]:
        raise where.error(f"must be [judge model, template], got {judge!r}", "judge")
    return judge[0]
