"""Run offline AG2 Classic chats under AG2's own OpenTelemetry instrumentation (``autogen.opentelemetry``) and write
the finished spans as OTLP/JSON lines (the Collector file exporter's format), one line per chat.

Run as a script (``python ag2_otel_run.py OUT WORK_DIR REPEATS``) in its own process: the LLM-wrapper
instrumentation patches ``OpenAIWrapper.create`` for the whole process. (A tool-calling chat is left out: with
``capture_messages=True`` AG2 0.14's wrapper reads ``tool_call.id`` from replies whose tool calls are dicts, and
raises.)
"""

import json
import sys
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ag2"))

from ag2_scenarios import research_group
from autogen import GroupChat
from autogen.opentelemetry import instrument_agent, instrument_llm_wrapper
from autogen.opentelemetry.instrumentators.pattern import instrument_groupchat

from capture.read.otlp_export import to_otlp_json


def main(out: Path, work_dir: Path, repeats: int) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "ag2-research"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_llm_wrapper(tracer_provider=provider, capture_messages=True)
    with out.open("w", encoding="utf-8") as lines:
        for index in range(repeats):
            manager, chat, agents, _ = research_group(work_dir / f"group{index}", "auto")
            for agent in [manager, *agents]:
                instrument_agent(agent, tracer_provider=provider)
            for groupchat in [chat, *(entry["config"] for entry in manager._reply_func_list
                                      if isinstance(entry.get("config"), GroupChat))]:
                instrument_groupchat(groupchat, tracer_provider=provider)  # the manager keeps a copy
            agents[2].initiate_chat(manager, message="Compute the answer and save it.", silent=True)
            lines.write(json.dumps(to_otlp_json(exporter.get_finished_spans())) + "\n")
            exporter.clear()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
