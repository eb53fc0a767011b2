"""Conversations and messages: what the public chat, the widget, the API and the test page
record. Services for writes (HackSoftware style); the answer itself comes from chat.answeringing."""

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from bots.models import Bot

from .models import Conversation, Message


def conversation_start(*, bot: Bot, channel: str = "web") -> Conversation:
    return Conversation.objects.create(bot=bot, channel=channel)


def _message(conversation: Conversation, role: str, text: str, answer=None) -> Message:
    message = Message(conversation=conversation, role=role, text=text)
    if answer is not None:
        message.path = answer.path
        message.score = answer.score
        message.latency_ms = answer.latency_ms
        message.sources = [source.as_dict() for source in answer.sources]
        message.related = list(answer.related)
    return message


@transaction.atomic
def message_record(*, conversation: Conversation, role: str, text: str, answer=None) -> Message:
    """Save one message; for the bot's reply pass the `chat.answering.Answer` it came from."""
    message = _message(conversation, role, text, answer)
    message.save()
    # Touch the conversation so "latest activity" orderings see the new message.
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    return message


@transaction.atomic
def turn_record(
    *,
    question: str,
    answer,
    conversation: Conversation | None = None,
    bot: Bot | None = None,
    channel: str = "web",
) -> Message:
    """Save the customer's question and the bot's reply (a `chat.answering.Answer`) together,
    starting a conversation on `bot`/`channel` when none is given. Returns the reply.

    One transaction per turn: every commit waits for a WAL flush, which dominated the chat's
    database time when question and reply were saved separately.
    """
    if conversation is None:
        conversation = Conversation.objects.create(bot=bot, channel=channel)
    else:
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now())
    question_message = _message(conversation, Message.Role.USER, question)
    reply = _message(conversation, Message.Role.BOT, answer.text, answer)
    Message.objects.bulk_create([question_message, reply])
    return reply


def message_rate(*, message: Message, rating: int) -> Message:
    """Thumbs up (+1) or down (-1) on one of the bot's answers; rating again replaces it."""
    if rating not in (1, -1):
        raise ValidationError("A rating is +1 or -1.")
    if message.role != Message.Role.BOT:
        raise ValidationError("Only the bot's answers can be rated.")
    message.rating = rating
    message.save(update_fields=["rating"])
    return message


def message_training_approve(*, message: Message, approved: bool = True) -> Message:
    """Mark (or unmark) one of the bot's answers as good for training: the chat fine-tuning set
    (training.datasets) takes it with the customer's question before it."""
    if message.role != Message.Role.BOT:
        raise ValidationError("Only the bot's answers can be marked for training.")
    message.training_approved = approved
    message.save(update_fields=["training_approved"])
    return message


def conversation_handoff(*, conversation: Conversation, email: str) -> Conversation:
    """Mark the conversation as handed to a human and email the workspace owners (on commit).

    Asking again updates the email but keeps the first request time. Raises ValidationError
    for an invalid address, or one longer than the column (validate_email allows up to 320).
    """
    validate_email(email)
    max_length = Conversation._meta.get_field("handoff_email").max_length
    if len(email) > max_length:
        raise ValidationError(f"An email address has at most {max_length} characters.")
    conversation.handoff_email = email
    conversation.handoff_requested_at = conversation.handoff_requested_at or timezone.now()
    conversation.save(update_fields=["handoff_email", "handoff_requested_at", "updated_at"])
    transaction.on_commit(lambda: _notify_handoff(conversation.pk))
    return conversation


def _notify_handoff(conversation_id: int) -> None:
    conversation = Conversation.objects.select_related("bot__workspace").get(pk=conversation_id)
    bot = conversation.bot
    owners = list(
        bot.workspace.memberships.filter(role="owner")
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not owners:
        return
    transcript = "\n\n".join(
        f"{m.get_role_display()}: {m.text}" for m in conversation.messages.all()[:100]
    )
    send_mail(
        subject=f"[{bot.name}] A customer asked for a human",
        message=(
            f"{conversation.handoff_email} asked to talk to a person in a chat with {bot.name}.\n"
            f"Reply to them at {conversation.handoff_email}.\n\n"
            f"Conversation {conversation.public_id}:\n\n{transcript}\n"
        ),
        from_email=None,
        recipient_list=owners,
        fail_silently=False,
    )
