"""Stand-in for the lead's core seam (sqsx/hooks.py on main): only what sqsx.payloads
subclasses. Replaced by main's module when the "Core seam" commit is merged."""

from __future__ import annotations

from sqsx.message import Message
from sqsx.sending import OutgoingMessage

__all__ = ["Hook"]


class Hook:
    """No-op hook methods; subclasses override what they need."""

    def resolve_message(self, message: Message) -> Message:
        return message

    def before_send(self, outgoing: OutgoingMessage) -> OutgoingMessage:
        return outgoing

    def after_delete(self, message: Message, queue_url: str) -> None:
        return None
