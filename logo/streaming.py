"""Streams one generation's text pieces from a worker thread, so a slow or vanished reader never holds the engine."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from .results import Generation


class GenerationStream:
    """Iterates text pieces of one generation running in a worker thread; `.result` is the Generation.

    The worker runs to the end on its own (bounded by max_new_tokens), so an abandoned stream never
    holds the engine; `close()` asks it to stop early.
    """

    _DONE = object()

    def __init__(self, run: Callable, tokenizer):
        self._tokenizer = tokenizer
        self._queue: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._result: Generation | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(run,), daemon=True)
        self._thread.start()

    def _work(self, run: Callable) -> None:
        try:
            self._result = run(lambda tokens: self._queue.put(list(tokens[0])), self._cancel)
        except BaseException as err:  # re-raised in the consumer's thread
            self._error = err
        finally:
            self._queue.put(self._DONE)

    def __iter__(self) -> Iterator[str]:
        shown = ""
        while (item := self._queue.get()) is not self._DONE:
            text = self._tokenizer.decode(item, skip_special_tokens=True)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            if len(text) > len(shown):
                yield text[len(shown) :]
                shown = text
        self._thread.join()
        if self._error is not None:
            raise self._error

    @property
    def result(self) -> Generation:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        self._cancel.set()

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
