"""What became of one input message: the label of ``smartcrop_messages_total`` and the answer of a job attempt."""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    COMPLETED = "completed"  # the handler's events and the offset committed
    FAILED = "failed"  # a ``failed`` status with a stable code committed; the partition moves on
    CANCELLED = "cancelled"  # stopped at a checkpoint on request; ``cancelled`` committed
    ABANDONED = "abandoned"  # nothing committed: the message is taken again, here or by the partition's next owner
    DEAD_LETTER = "dead_letter"  # not one of our events: to the dead-letter topic
    REPLAYED = "replayed"  # a job another message already started: committed and skipped
    JOB_ID_CONFLICT = "job_id_conflict"  # a different job under a taken id: to the dead-letter topic

    @property
    def ran(self) -> bool:
        """The job ran to an end here, so its wall time is a stage duration worth observing."""
        return self in (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED)
