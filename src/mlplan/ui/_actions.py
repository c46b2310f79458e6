"""The dashboard's rollout actions: ``mlplan rollout promote|pause|resume|abort|rollback``
from a form on the Deployments page, behind the role the server's own rollout routes need
(``admin``), checked by the server's key ring.

No cookie or session ever authorises an action: the key travels in the request itself (the
form's ``key`` field over POST, or an ``Authorization: Bearer`` header), so a form on another
site cannot make one (it does not know the key), which is why the actions need no CSRF token.
The key is never put in an address, and never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from mlplan.errors import (
    CheckFailedError,
    DeploymentNotFoundError,
    RolloutNotFoundError,
    RolloutStateError,
    UsageError,
)
from mlplan.rollout import MOVES, RolloutInfo, move_rollout, rollout_routes
from mlplan.serving import KeyRing, route_roles
from mlplan.workspace import Workspace

__all__ = ["MAX_FORM_BYTES", "ActionOutcome", "action_role", "read_form", "rollout_action"]

MAX_FORM_BYTES = 16_384
"""The largest action form read (a key and a note); a larger one is refused with 413."""

_MAX_NOTE = 1_000


@dataclass(frozen=True)
class ActionOutcome:
    """What an action came to: the HTTP status (200 done; 401 no valid key; 403 a key without
    the role; 404 no such deployment or move; 409 a move the rollout refuses; 422 a bad
    value), the sentence the page shows, and the rollout after a move made."""

    status: int
    message: str
    rollout: RolloutInfo | None = None


def action_role(action: str) -> str:
    """The role the server's route for ``action`` needs (``POST /v1/rollouts/{name}/ACTION``):
    the dashboard asks what the API asks.

    Examples
    --------
    >>> action_role("promote")
    'admin'
    """
    return str(route_roles(rollout_routes())[("POST", f"/v1/rollouts/{{name}}/{action}")])


def read_form(body: bytes, authorization: str | None) -> tuple[str | None, str | None]:
    """The key and the note of an action's request: the key from ``Authorization: Bearer``,
    else from the form's ``key`` field (``application/x-www-form-urlencoded``); the note from
    its ``note`` field, stripped (None when empty).

    Examples
    --------
    >>> read_form(b"key=mlp_a_b&note=looks+good", None)
    ('mlp_a_b', 'looks good')
    >>> read_form(b"note=", "Bearer mlp_c_d")
    ('mlp_c_d', None)
    """
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    token = None
    if authorization is not None and authorization[:7].lower() == "bearer ":
        token = authorization[7:].strip() or None
    if token is None:
        token = (fields.get("key") or [""])[0].strip() or None
    note = (fields.get("note") or [""])[0].strip() or None
    return token, note


def rollout_action(
    ws: Workspace, name: str, action: str, *, token: str | None, note: str | None
) -> ActionOutcome:
    """Make ``action`` on the active rollout of deployment ``name`` as the key ``token``
    belongs to, as ``mlplan rollout ACTION NAME --by WHO --note NOTE`` does: an event of the
    rollout whose actor is the key's name, the dashboard and the key's id (never its secret),
    e.g. ``Priya (dashboard, key 3f2a9c01d4e7)``. Nothing changes unless the outcome is 200.

    Examples
    --------
    >>> import tempfile
    >>> from mlplan.workspace import Workspace
    >>> rollout_action(Workspace(tempfile.mkdtemp()), "production", "pause", token=None,
    ...                note=None).status
    401
    """
    if action not in MOVES:
        return ActionOutcome(
            404, f"there is no rollout action {action!r}: use one of {', '.join(MOVES)}"
        )
    role = action_role(action)
    # reading must not create a store: without one there is no key to check
    key = KeyRing(ws).authenticate(token) if ws.has_store and token else None
    if key is None:
        return ActionOutcome(
            401,
            f"{action} needs a valid API key with the {role!r} role in the form's key field: "
            f"nothing was changed. Create one with: mlplan keys create --name NAME --role {role}",
        )
    if not key.allows(role):
        return ActionOutcome(
            403,
            f"the key {key.name!r} ({key.key_id}) lacks the {role!r} role that {action} needs: "
            "nothing was changed",
        )
    if note is not None and len(note) > _MAX_NOTE:
        return ActionOutcome(422, f"the note is {len(note):,} characters; keep it to {_MAX_NOTE:,}")
    by = f"{key.name} (dashboard, key {key.key_id})"
    try:
        rollout = move_rollout(ws, name, action, by=by, note=note)
    except DeploymentNotFoundError as error:
        return ActionOutcome(404, str(error))
    except (RolloutNotFoundError, RolloutStateError, CheckFailedError) as error:
        return ActionOutcome(409, str(error))
    except UsageError as error:
        return ActionOutcome(422, str(error))
    return ActionOutcome(
        200,
        f"{action} of {name} by {key.name}: the {rollout.strategy} rollout of "
        f"{rollout.candidate} is {rollout.state}; {rollout.serving} serves, the candidate "
        f"takes {rollout.weight:g}% of traffic",
        rollout,
    )
