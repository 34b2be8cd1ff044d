"""`RunMemorySaver`: LangGraph's in-memory checkpointer, deleting a thread by its own keys.

LangGraph's ``InMemorySaver.delete_thread`` scans every stored write and blob
of every thread to find one thread's, so in a process running many workflows
at once, each run that ends pays for all the others' state: at 1000 concurrent
runs cleanup dominates. This subclass keeps, per thread, the keys it stored
(recorded as ``put`` and ``put_writes`` store them) and deletes exactly those:
one run's cleanup costs O(that run's writes), whatever else is stored.
Everything else (reads, listing, versions, serialisation) is LangGraph's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver

__all__ = ["RunMemorySaver"]

_BlobKey = tuple[str, str, str, str | int | float]
_WritesKey = tuple[str, str, str]


class RunMemorySaver(InMemorySaver):
    """An ``InMemorySaver`` with a per-thread index of its writes and blobs.

    Args:
        serde: The serialiser (LangGraph's default when ``None``).
    """

    def __init__(self, *, serde: Any = None) -> None:
        super().__init__(serde=serde)
        self._blob_keys: dict[str, set[_BlobKey]] = {}
        self._write_keys: dict[str, set[_WritesKey]] = {}

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store the checkpoint (LangGraph's ``put``) and index its blobs by thread."""
        saved = super().put(config, checkpoint, metadata, new_versions)
        if new_versions:
            where = config["configurable"]
            thread, ns = where["thread_id"], where["checkpoint_ns"]
            keys = self._blob_keys.get(thread)
            if keys is None:
                keys = self._blob_keys[thread] = set()
            keys.update((thread, ns, channel, version) for channel, version in new_versions.items())
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store the writes (LangGraph's ``put_writes``) and index them by thread."""
        super().put_writes(config, writes, task_id, task_path)
        where = config["configurable"]
        thread = where["thread_id"]
        key = (thread, where.get("checkpoint_ns", ""), where["checkpoint_id"])
        if key in self.writes:
            keys = self._write_keys.get(thread)
            if keys is None:
                keys = self._write_keys[thread] = set()
            keys.add(key)

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes and blobs, touching no other thread's."""
        self.storage.pop(thread_id, None)
        writes, blobs = self.writes, self.blobs
        for key in self._write_keys.pop(thread_id, ()):
            writes.pop(key, None)
        for blob in self._blob_keys.pop(thread_id, ()):
            blobs.pop(blob, None)

    async def adelete_thread(self, thread_id: str) -> None:
        """See :meth:`delete_thread`."""
        self.delete_thread(thread_id)
