"""Rows a worker claims: the fencing-token pattern shared by ingestions (knowledge.services),
embedding-model switches (knowledge.reembedding) and retrieval tunings (training.retrieval).

A run claims its row with one conditional UPDATE (waiting -> running, or running with no sign of
life for `stale`, DEAD_AFTER by default -> running again) that stamps `started_at`. While it runs,
`heartbeat()` stamps `updated_at` every HEARTBEAT_SECONDS from a thread, so a live run never looks
dead (inside a long model call or training step) and a killed one does within DEAD_AFTER. A
delivery that finds the row held by a live run looks again when that owner would count as dead
(`claim(recheck=...)`): Celery's immediate redelivery after a killed worker takes over then. That stamp is the run's token:
progress writes and the final transaction apply only while the row still carries it, so a second
delivery, a recovered run or a newer request never lets two runs both finish. Beat recovers rows
whose worker died (re-queued, or failed after `max_attempts` claims) and re-sends waiting rows
whose message was lost, so nothing stays "running" for ever.

The model is a TrackedJob with `status` (QUEUED/RUNNING choices among its own) and a text field
for the reason (`reason_field`); knowledge.Source is one too, with its own status names.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from celery.contrib.django.task import DjangoTask
from django.db import connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis import RedisError

log = logging.getLogger(__name__)

# What publishing a task raises when the broker (Redis) is unreachable.
PUBLISH_ERRORS = (OperationalError, RedisError, ConnectionError)
# updated_at of a waiting row whose message could not be published: older than any `stale`, so
# beat's next sweep (recover_stuck, every minute) re-sends it once the broker answers again.
UNSENT = datetime(2000, 1, 1, tzinfo=UTC)
# A running row's heartbeat period, and the silence after which its owner is presumed dead. Three
# missed beats: a busy database or a paused process does not lose a live run its claim.
HEARTBEAT_SECONDS = 10.0
DEAD_AFTER = timedelta(seconds=30)


class TrackedJob(models.Model):
    """A background job's row: what ClaimedJobs needs, and its progress for the dashboard."""

    SUCCEEDED: ClassVar[str]  # the status at which the progress bar is full
    ACTIVE: ClassVar[tuple[str, ...]] = ("queued", "running")  # waiting or running

    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)  # claims, see ClaimedJobs
    started_at = models.DateTimeField(null=True, blank=True)  # also the run's fencing token
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def progress_percent(self) -> int:
        if self.status == self.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))


class Superseded(Exception):
    """The run lost its claim (recovered elsewhere, or replaced by a newer request): drop its work."""


@dataclass(frozen=True)
class ClaimedJobs:
    model: type[models.Model]
    waiting: str
    running: str
    failed: str
    reason_field: str = "error"

    def claim(
        self, pk: int, *, stale: timedelta = DEAD_AFTER, recheck=None, **fields
    ) -> datetime | None:
        """Claim the row for this run; returns its token, or None when it is not ours to run.

        `recheck` (the task that runs these rows): when a live run holds the row, the task is sent
        again for the moment that run would count as dead. Celery redelivers a killed worker's
        task at once, while the dead run's last heartbeat is still fresh; the recheck is what
        takes over then. While the owner lives, each recheck just schedules the next."""
        now = timezone.now()
        claimed = (
            self.model.objects.filter(pk=pk)
            .filter(Q(status=self.waiting) | Q(status=self.running, updated_at__lt=now - stale))
            .update(
                status=self.running,
                started_at=now,
                finished_at=None,
                attempts=F("attempts") + 1,
                progress_done=0,
                progress_total=0,
                updated_at=now,
                **{self.reason_field: "", **fields},
            )
        )
        if claimed:
            return now
        if recheck is not None:
            self._recheck_later(recheck, pk, stale)
        return None

    def _recheck_later(self, task, pk: int, stale: timedelta) -> None:
        last = (
            self.model.objects.filter(pk=pk, status=self.running)
            .values_list("updated_at", flat=True)
            .first()
        )
        if last is None:
            return  # finished, failed or deleted: nothing to take over
        countdown = max(1.0, (last + stale - timezone.now()).total_seconds() + 1)
        try:
            task.apply_async((pk,), countdown=countdown)
        except PUBLISH_ERRORS as exc:  # beat's sweep recovers the row instead
            log.warning("Could not schedule a recheck of %s(%s): %s", task.name, pk, exc)

    @contextmanager
    def heartbeat(self, pk: int, token, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
        """While the block runs, a thread stamps the row's `updated_at` every `every` seconds (on
        its own database connection). It stops when the run loses its claim; a row locked by the
        run's own final transaction counts as alive without waiting for the lock."""
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(every) and self._beat(pk, token):
                    pass
            except Exception:
                log.exception("Heartbeat of %s %s stopped", self.model.__name__, pk)
            finally:
                connections.close_all()  # this thread's connections only

        thread = threading.Thread(
            target=beat, name=f"heartbeat-{self.model.__name__}-{pk}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=every)

    def _beat(self, pk: int, token) -> bool:
        with transaction.atomic():
            if self.owned(pk, token).select_for_update(skip_locked=True).exists():
                self.model.objects.filter(pk=pk).update(updated_at=timezone.now())
                return True
        return self.owned(pk, token).exists()

    def owned(self, pk: int, token) -> models.QuerySet:
        """The row while this run still holds it (empty once superseded)."""
        return self.model.objects.filter(pk=pk, status=self.running, started_at=token)

    def progress(self, pk: int, token, **fields) -> None:
        """Record progress (and a sign of life); raises Superseded when the claim is lost."""
        if not self.owned(pk, token).update(updated_at=timezone.now(), **fields):
            raise Superseded

    def finish(self, pk: int, token, status: str, reason: str = "", **fields) -> int:
        now = timezone.now()
        return self.owned(pk, token).update(
            status=status,
            finished_at=now,
            updated_at=now,
            **{self.reason_field: reason[:2000], **fields},
        )

    def send_on_commit(self, task, pk: int) -> None:
        """Publish `task(pk)` once the current transaction commits (at once outside one).

        A broker that is down must not turn a saved write into an error page, nor make the
        request wait: publishing fails fast (settings: CELERY_TASK_PUBLISH_RETRY_POLICY), the row
        stays waiting and is marked UNSENT, and beat's sweep re-sends it when Redis is back."""

        def send() -> None:
            try:
                task.delay(pk)
            except PUBLISH_ERRORS as exc:
                log.warning(
                    "Could not queue %s(%s): %s; beat re-sends it when the broker is back.",
                    task.name,
                    pk,
                    exc,
                )
                self.model.objects.filter(pk=pk, status=self.waiting).update(updated_at=UNSENT)

        transaction.on_commit(send)

    def recover_stuck(
        self,
        *,
        stale: timedelta,
        max_attempts: int,
        failure: str,
        enqueue: Callable[[int], None],
        failed_fields: dict | None = None,
        requeued_fields: dict | None = None,
        dead_after: timedelta = DEAD_AFTER,
    ) -> dict:
        """Beat: re-queue running rows with no heartbeat for `dead_after` (or `stale`, if
        shorter), or fail them (with `failure` as the reason) after `max_attempts` claims;
        re-send waiting rows older than `stale` (their message was lost, or never sent)."""
        now = timezone.now()
        cutoff = now - stale
        dead = now - min(stale, dead_after)
        stuck = self.model.objects.filter(status=self.running, updated_at__lt=dead)
        failed = stuck.filter(attempts__gte=max_attempts).update(
            status=self.failed,
            finished_at=now,
            updated_at=now,
            **{self.reason_field: failure, **(failed_fields or {})},
        )
        requeued = []
        for pk in stuck.filter(attempts__lt=max_attempts).values_list("pk", flat=True):
            # Conditional, so a run that shows life meanwhile keeps its claim.
            if self.model.objects.filter(pk=pk, status=self.running, updated_at__lt=dead).update(
                status=self.waiting, updated_at=now, **(requeued_fields or {})
            ):
                requeued.append(pk)
        lost = list(
            self.model.objects.filter(status=self.waiting, updated_at__lt=cutoff)
            .exclude(pk__in=requeued)
            .values_list("pk", flat=True)
        )
        for pk in requeued + lost:
            enqueue(pk)
        return {"requeued": len(requeued), "failed": failed, "resent": len(lost)}

    def unfinished_ids(self) -> list[int]:
        """Waiting and running rows, oldest first."""
        rows = self.model.objects.filter(status__in=(self.waiting, self.running))
        return list(rows.order_by("pk").values_list("pk", flat=True))


class GiveUpTask(DjangoTask):
    """A task that retries its transient errors with Celery's own back-off, then gives up.

    Declare `autoretry_for=(SomeTransientError,)`, `retry_backoff`, `max_retries` on the task
    and `give_up=<callable>`: once the retries are spent, Celery fails the task with the last
    error, and `give_up(*args, error=<readable reason>)` marks its row FAILED so nothing stays
    queued for ever. Any other error is the job's own to record (ClaimedJobs.finish)."""

    give_up: Callable[..., None] | None = None
    give_up_message = "The model service stayed unavailable: {error}"

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        if self.give_up is not None and isinstance(exc, tuple(self.autoretry_for or ())):
            self.give_up(*args, error=self.give_up_message.format(error=exc))
