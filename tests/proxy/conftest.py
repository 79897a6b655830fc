"""Shared fixtures: the real built-in extractor, a recording OpenAI-compatible upstream, and proxy servers
started under uvicorn on 127.0.0.1 with per-test settings."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from liquid_memory_proxy.app import build_extractor_from_settings, create_app  # noqa: E402
from liquid_memory_proxy.settings import ProxySettings  # noqa: E402
from liquid_memory_proxy.testing import FakeLLM, ServerThread  # noqa: E402

# question -> (planted sentence, the key detail that must reach the synthesis model)
PLANTED = {
    "What is the access code of the northern vault?": (
        "The access code of the northern vault is 7319-KESTREL.",
        "7319-KESTREL",
    ),
    "Who signed the Harwick supply contract?": (
        "The Harwick supply contract was signed by Imelda Castellano.",
        "Imelda Castellano",
    ),
    "How much did the Orion refurbishment cost?": (
        "The Orion refurbishment cost 4.2 million euros in total.",
        "4.2 million euros",
    ),
}
_SUBJECTS = [
    "The committee",
    "Our gardener",
    "The river",
    "A small bakery",
    "The old library",
    "The orchestra",
    "Every winter the village",
    "The ferry company",
    "A local historian",
    "The weather station",
]
_VERBS = [
    "discussed",
    "remembered",
    "painted",
    "ignored",
    "celebrated",
    "measured",
    "described",
    "repaired",
    "questioned",
    "photographed",
]
_OBJECTS = [
    "the long summer evenings",
    "a forgotten recipe for plum cake",
    "the colour of the hills",
    "the noise of the trains",
    "a map of the coastline",
    "the habits of migrating geese",
    "the price of firewood",
    "an argument about chess openings",
    "the smell of rain on stone",
    "the history of the bell tower",
]
_TAILS = [
    "before anyone noticed.",
    "with surprising patience.",
    "for the third time that year.",
    "while the tea went cold.",
    "and then moved on.",
    "in great detail.",
    "without much enthusiasm.",
    "as the light faded.",
]


def make_document(n_paragraphs: int = 60, seed: int = 0, facts: list[str] | None = None) -> str:
    """Filler prose (deterministic) with the planted fact sentences spread through it."""
    rng = random.Random(seed)
    facts = [fact for fact, _ in PLANTED.values()] if facts is None else facts
    paragraphs = []
    for _ in range(n_paragraphs):
        sentences = [
            " ".join((rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_TAILS)))
            for _ in range(rng.randint(4, 8))
        ]
        paragraphs.append(" ".join(sentences))
    positions = sorted(rng.sample(range(1, n_paragraphs - 1), len(facts)))
    for pos, fact in zip(positions, facts, strict=True):
        paragraphs[pos] += " " + fact
    return "\n\n".join(paragraphs)


@pytest.fixture(scope="session")
def document() -> str:
    return make_document()


@pytest.fixture(scope="session")
def extractor():
    """The real built-in extractor (built once: it loads a small embedding model)."""
    return build_extractor_from_settings(ProxySettings(_env_file=None))


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[tuple[FakeLLM, str]]:
    llm = FakeLLM()
    with ServerThread(llm.app()) as server:
        yield llm, server.url


@pytest.fixture()
def upstream(upstream_server) -> FakeLLM:
    llm, _ = upstream_server
    llm.reset()
    return llm


@pytest.fixture()
def make_proxy(upstream_server, extractor) -> Iterator[Callable[..., str]]:
    """`make_proxy(**settings) -> base URL` of a fresh proxy under uvicorn; upstream = the fake LLM."""
    _, upstream_url = upstream_server
    with ExitStack() as stack:

        def start(extractor_override=None, **overrides) -> str:
            values = {
                "synthesis_model": "openai/fake-model",
                "synthesis_api_base": upstream_url + "/v1",
                "synthesis_api_key": "sk-test-upstream-key-DO-NOT-LOG",
                "synthesis_timeout_s": 5.0,
                "synthesis_max_retries": 2,
                "synthesis_retry_backoff_s": 0.01,
                **overrides,
            }
            settings = ProxySettings(_env_file=None, **values)
            app = create_app(settings, extractor=extractor_override or extractor)
            return stack.enter_context(ServerThread(app)).url

        yield start


@pytest.fixture()
def proxy_url(make_proxy) -> str:
    return make_proxy()


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture()
def proxy_logs() -> Iterator[list[str]]:
    """Every formatted log line the proxy emits during the test (its JSON formatter)."""
    from liquid_memory_proxy.observability import JsonFormatter

    handler = ListHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("liquid_memory_proxy")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)
