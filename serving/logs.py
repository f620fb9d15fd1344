"""Structured logs: one JSON object per line on stderr.

Fields passed with ``extra={"fields": {...}}`` become top-level keys, so a log
pipeline can filter on ``router_version`` or ``grpc_code`` without parsing
text. Prompt text is only ever passed by the servicer, and only when
``--log-prompts`` is set.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` argument for a log call: ``log.info("msg", extra=fields(a=1))``."""
    return {FIELDS: values}


def configure(level: int | str = logging.INFO) -> None:
    """Send every log record of the process to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
