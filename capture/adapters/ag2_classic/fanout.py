"""A GroupChatManager's round fan-out, recognised so that it is recorded as one broadcast, not one per recipient.

AG2's ``run_chat``/``a_run_chat`` append each round's message to ``groupchat.messages`` and then send that very
dict, silently, to every agent of the group except the speaker, in group order. A silent send of the object that
is ``groupchat.messages[-1]`` to the first of those agents therefore opens the round's fan-out: it is recorded once,
listing every recipient, and the sends of the same object to the others are skipped. Anything else the manager
sends silently (introductions, guardrail replacements, resumed history, a message that is not the last appended)
is recorded per recipient. A group with inter-agent guardrails is never aggregated: a guardrail may send some
recipients a replacement instead, so the recipient list is only known send by send.
"""

from typing import Any


class FanOut:
    """One manager's fan-out in progress: the message object being broadcast and the agents still due to get it.

    Kept per manager (on its send hook), never global; a manager runs one group chat at a time.
    """

    __slots__ = ("due", "message")

    def __init__(self) -> None:
        self.message: Any = None
        self.due: list[Any] = []

    def continues(self, recipient: Any) -> bool:
        """Is this send of ``self.message`` (the caller checked that it is) a later send of the fan-out already
        recorded? (It is then crossed off and not recorded.)"""
        for index, agent in enumerate(self.due):
            if agent is recipient:
                del self.due[index]
                if not self.due:
                    self.message = None
                return True
        return False

    def opens(self, manager: Any, message: Any, recipient: Any) -> list[str] | None:
        """The recipients' names when this silent send opens a round's fan-out (record one broadcast), else
        ``None`` (record the send on its own)."""
        groupchat = getattr(manager, "groupchat", None)
        messages = getattr(groupchat, "messages", None)
        if not messages or messages[-1] is not message or getattr(groupchat, "_inter_agent_guardrails", None):
            return None
        speaker = getattr(manager, "_last_speaker", None)
        others = [agent for agent in groupchat.agents if agent is not speaker]
        if not others or others[0] is not recipient:
            return None
        due = others[1:]
        self.message, self.due = (message if due else None), due
        return [agent.name for agent in others]
