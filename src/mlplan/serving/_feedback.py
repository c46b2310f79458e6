"""Feedback checked before it is logged (``POST /v1/feedback``): the id of a request this
project's servers issued, a label the model could have predicted (the ground truth), the
human's decision where a person decides with the model's help (assist: a class the model
could have predicted too), a finite business value, and product events with plain names.
Nothing else reaches the log, and no refusal echoes what it refused (a planted e-mail or
phone number is personal data)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from mlplan.serving._ids import ID_LENGTH, RequestIds, unknown_field

__all__ = ["EVENT_NAME", "FeedbackValidator"]

EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
"""An event's name (full match): a letter, then letters, digits, ``_ . -``; 64 at most. The
plan declares no product events, so this is all a name is held to."""

_FIELDS = ("request_id", "label", "decision", "value", "events")
_MAX_EVENTS = 100


def _number(value: Any) -> bool:
    """A finite JSON number (not a boolean)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _problem(loc: Sequence[Any], kind: str, msg: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "type": kind, "msg": msg}


class FeedbackValidator:
    """Checks feedback bodies for one served model.

    Parameters
    ----------
    ids
        The request ids the servers issue: feedback names one of them, or is refused.
    classes
        The classes a classifier predicts (a label must be one); empty for regression (a
        label must be a finite number).
    """

    def __init__(self, ids: RequestIds, *, classes: Sequence[str]) -> None:
        self.ids = ids
        self.classes = frozenset(classes)
        self._shown = ", ".join(list(classes)[:20]) + (" …" if len(classes) > 20 else "")

    def validate(self, body: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """What the log keeps of ``body`` (the label and the decision as class names, the
        value, the events), and its problems (none when it may be logged)."""
        if not isinstance(body, dict):
            return {}, [_problem([], "dict_type", "expected an object")]
        out = self._request_id(body.get("request_id", None), "request_id" in body)
        for position, name in enumerate(body):
            if name not in _FIELDS:
                place, described = unknown_field(self.ids.key, name, position)
                out.append(
                    _problem(
                        [place], "extra_forbidden", f"{described}; fields: {', '.join(_FIELDS)}"
                    )
                )
        if not {"label", "decision", "value", "events"} & set(body):
            out.append(
                _problem(
                    [], "missing", "give a label (ground truth), a decision, a value or events"
                )
            )
        kept: dict[str, Any] = {}
        for field in ("label", "decision"):  # the truth, and what the human decided
            if field in body:
                label = self._label(body[field])
                if label is None:
                    out.append(_problem([field], "label", self._label_expected()))
                else:
                    kept[field] = label
        if "value" in body:
            if _number(body["value"]):
                kept["value"] = body["value"]
            else:
                out.append(_problem(["value"], "float_type", "expected a finite number"))
        if "events" in body:
            events = body["events"]
            if not isinstance(events, list) or len(events) > _MAX_EVENTS:
                out.append(
                    _problem(["events"], "list_type", f"expected a list of at most {_MAX_EVENTS}")
                )
            else:
                for i, event in enumerate(events):
                    if not _is_event(event):
                        out.append(_problem(["events", i], "event", _EVENT_EXPECTED))
                kept["events"] = events
        return kept, out

    def _request_id(self, request_id: Any, given: bool) -> list[dict[str, Any]]:
        if not given:
            return [_problem(["request_id"], "missing", _ID_EXPECTED)]
        if not isinstance(request_id, str):
            return [_problem(["request_id"], "string_type", _ID_EXPECTED)]
        if not self.ids.issued(request_id):
            return [
                _problem(
                    ["request_id"],
                    "unknown_request_id",
                    f"not a request id this server issued; {_ID_EXPECTED}",
                )
            ]
        return []

    def _label(self, label: Any) -> Any:
        """The label as the log keeps it (a class name, or a number), or None if the model
        could not have predicted it."""
        if not self.classes:
            return label if _number(label) else None
        if isinstance(label, str):
            return label if label in self.classes else None
        if isinstance(label, int):  # 1 for the class "1"; true for "True"
            return str(label) if str(label) in self.classes else None
        return None

    def _label_expected(self) -> str:
        if not self.classes:
            return "expected a finite number (the true value)"
        return f"expected one of the model's classes: {self._shown}"


_ID_EXPECTED = (
    f"send the request_id a prediction was answered with (or its X-Request-Id header: "
    f"{ID_LENGTH} hex digits)"
)
_EVENT_EXPECTED = (
    'expected {"name": "...", "value": a finite number (1 by default)}, the name a letter '
    "then letters, digits, _ . or - (at most 64)"
)


def _is_event(event: Any) -> bool:
    """``{"name": "...", "value": number}`` (the value defaults to 1)."""
    return (
        isinstance(event, dict)
        and not set(event) - {"name", "value"}
        and isinstance(event.get("name"), str)
        and EVENT_NAME.fullmatch(event["name"]) is not None
        and _number(event.get("value", 1))
    )
