"""The call log: every routed LLM call, stored durably in the graded-call format.

Stores are chosen by URL (``sqlite:///calls.db`` embedded, or
``postgresql://...`` for several services); the writer takes calls off the
request path; the grading helpers attach user feedback and programmatic
checks. See docs/call-log.md.

    from serving.calllog import CallLogWriter, open_store

    store = open_store("sqlite:///calls.db")
    with CallLogWriter(store) as writer:
        writer.submit(call)          # never blocks, never raises
    store.close()

Nothing here opens a connection or starts a thread until it is called.
"""

from serving.calllog.grading import (
    USER_GRADER,
    VALIDATOR_PREFIX,
    Validator,
    answer_text,
    apply_feedback,
    grade_with_validator,
)
from serving.calllog.postgres_store import PostgresStore
from serving.calllog.privacy import HASH_KEY_ENV, HASH_PREFIX, PromptMode, PromptPolicy, prompt_hmac
from serving.calllog.sqlite_store import SQLiteStore
from serving.calllog.store import (
    DEFAULT_STORE_URL,
    STORE_URL_ENV,
    CallLogStore,
    default_store_url,
    open_store,
)
from serving.calllog.writer import CallLogWriter

__all__ = [
    "DEFAULT_STORE_URL",
    "HASH_KEY_ENV",
    "HASH_PREFIX",
    "STORE_URL_ENV",
    "USER_GRADER",
    "VALIDATOR_PREFIX",
    "CallLogStore",
    "CallLogWriter",
    "PostgresStore",
    "PromptMode",
    "PromptPolicy",
    "SQLiteStore",
    "Validator",
    "answer_text",
    "apply_feedback",
    "default_store_url",
    "grade_with_validator",
    "open_store",
    "prompt_hmac",
]
