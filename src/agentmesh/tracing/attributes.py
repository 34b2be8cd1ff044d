"""Every span, event and metric attribute name agentmesh emits, in one place.

OpenTelemetry GenAI semantic-convention names (status: Development) come from the
installed ``opentelemetry-semantic-conventions`` package, so a rename upstream is
one version bump away. Names the conventions do not define live in the
``agentmesh.*`` namespace and are defined here, and only here.

Span names (see :mod:`agentmesh.tracing.spans`):

- ``invoke_workflow {workflow}``: one run (``gen_ai.operation.name=invoke_workflow``).
- ``invoke_agent {node}``: one execution of a workflow node (``gen_ai.agent.name`` =
  the node, ``gen_ai.agent.id``, ``agentmesh.node.kind``); a judge's verdicts are
  ``gen_ai.evaluation.result`` events on its span.
- ``route {node}``: one routing decision (``agentmesh.route.*``).
- ``chat {gen_ai.request.model}``: one model call attempt (GenAI inference span).
- ``execute_tool {gen_ai.tool.name}``: one tool call.

Every span of a run carries ``gen_ai.conversation.id`` = the run (thread) id.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import exception_attributes as _exception
from opentelemetry.semconv.attributes import server_attributes as _server

__all__ = [
    "ATTEMPT",
    "BREAKER_FROM",
    "BREAKER_TO",
    "CONTENT_ENV_VAR",
    "COST_USD",
    "ERROR_TYPE",
    "ESCALATION_LEVEL",
    "ESCALATION_REASON",
    "EVALUATION_BRANCH",
    "EVALUATION_DECISION_ID",
    "EVALUATION_GAVE_UP",
    "EVALUATION_LABELS",
    "EVALUATION_MODEL",
    "EVALUATION_NODE",
    "EVALUATION_ROUND",
    "EVENT_EVALUATION_RESULT",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "FALLBACK",
    "FALLBACK_FROM",
    "FALLBACK_REASON",
    "FALLBACK_TO",
    "GEN_AI_AGENT_ID",
    "GEN_AI_AGENT_NAME",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_EMBEDDINGS_DIMENSION_COUNT",
    "GEN_AI_EVALUATION_EXPLANATION",
    "GEN_AI_EVALUATION_NAME",
    "GEN_AI_EVALUATION_SCORE_LABEL",
    "GEN_AI_EVALUATION_SCORE_VALUE",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_OUTPUT_TYPE",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_SEED",
    "GEN_AI_REQUEST_STREAM",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK",
    "GEN_AI_TOKEN_TYPE",
    "GEN_AI_TOOL_CALL_ARGUMENTS",
    "GEN_AI_TOOL_CALL_ID",
    "GEN_AI_TOOL_CALL_RESULT",
    "GEN_AI_TOOL_NAME",
    "GEN_AI_TOOL_TYPE",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "GEN_AI_WORKFLOW_NAME",
    "MERGE_BRANCHES",
    "MERGE_MODELS",
    "METRIC_BREAKER_TRANSITIONS",
    "METRIC_COST",
    "METRIC_ESCALATIONS",
    "METRIC_FALLBACKS",
    "METRIC_OPERATION_DURATION",
    "METRIC_ROUTE_DECISIONS",
    "METRIC_TOKEN_USAGE",
    "MODEL_ID",
    "NODE_BRANCH",
    "NODE_KIND",
    "NODE_MODELS",
    "NODE_NAME",
    "NODE_ROLE",
    "NODE_TIME_TO_FIRST_TOKEN",
    "NODE_VERDICT",
    "OP_CHAT",
    "OP_EMBEDDINGS",
    "OP_EXECUTE_TOOL",
    "OP_INVOKE_AGENT",
    "OP_INVOKE_WORKFLOW",
    "PROMPT_HASH",
    "PROMPT_TEMPLATE",
    "PROMPT_VARIANT",
    "ROUTE_CANDIDATES",
    "ROUTE_CANDIDATE_COUNT",
    "ROUTE_CANDIDATE_NOTES",
    "ROUTE_CANDIDATE_SCORES",
    "ROUTE_CHOSEN",
    "ROUTE_DECISION_ID",
    "ROUTE_DOMAIN_DISTANCE",
    "ROUTE_EXCLUDED",
    "ROUTE_EXCLUDED_COUNT",
    "ROUTE_FALLBACKS",
    "ROUTE_OUT_OF_DOMAIN",
    "ROUTE_REASON",
    "ROUTE_RESERVED_USD",
    "ROUTE_ROUND",
    "ROUTE_SELECTED",
    "ROUTE_STRATEGY",
    "ROUTE_TASK",
    "RUN_BUDGET_USD",
    "RUN_ID",
    "RUN_STATUS",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SIMULATED",
    "STREAM_CUT_OFF",
    "TOKEN_INPUT",
    "TOKEN_OUTPUT",
    "USAGE_ESTIMATED",
]

# --- OpenTelemetry GenAI semantic conventions (from opentelemetry-semantic-conventions) ---

GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_SEED: Final = _gen_ai.GEN_AI_REQUEST_SEED
GEN_AI_REQUEST_STREAM: Final = _gen_ai.GEN_AI_REQUEST_STREAM
GEN_AI_OUTPUT_TYPE: Final = _gen_ai.GEN_AI_OUTPUT_TYPE
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
"""Opt-in content: the prompt as a JSON string following the GenAI input-messages schema."""
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
"""Opt-in content: the completion as a JSON string following the GenAI output-messages schema."""
GEN_AI_WORKFLOW_NAME: Final = _gen_ai.GEN_AI_WORKFLOW_NAME
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
"""On ``invoke_agent`` spans: the node's name in the graph."""
GEN_AI_AGENT_ID: Final = _gen_ai.GEN_AI_AGENT_ID
"""On ``invoke_agent`` spans: ``{workflow}/{node}``, the same in every run of the graph."""
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
"""On every span of a run: the run id, which is also its LangGraph thread id."""
GEN_AI_EVALUATION_NAME: Final = _gen_ai.GEN_AI_EVALUATION_NAME
"""On ``gen_ai.evaluation.result`` events: the judge node's name."""
GEN_AI_EVALUATION_SCORE_VALUE: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
GEN_AI_EVALUATION_SCORE_LABEL: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL
"""``pass`` or ``fail`` (:data:`EVALUATION_LABELS`)."""
GEN_AI_EVALUATION_EXPLANATION: Final = _gen_ai.GEN_AI_EVALUATION_EXPLANATION
"""The verdict's feedback: content, so only with capture on (scrubbed, at most 1000 chars)."""
GEN_AI_TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = _gen_ai.GEN_AI_EMBEDDINGS_DIMENSION_COUNT
GEN_AI_TOOL_TYPE: Final = _gen_ai.GEN_AI_TOOL_TYPE
GEN_AI_TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
ERROR_TYPE: Final = _error.ERROR_TYPE
"""On failure: the taxonomy's ``ModelError.kind`` (``rate_limited``...), else the class name."""
EXCEPTION_TYPE: Final = _exception.EXCEPTION_TYPE
EXCEPTION_MESSAGE: Final = _exception.EXCEPTION_MESSAGE
EXCEPTION_STACKTRACE: Final = _exception.EXCEPTION_STACKTRACE
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT

OP_CHAT: Final = _gen_ai.GenAiOperationNameValues.CHAT.value
"""``gen_ai.operation.name`` of a model call (every agentmesh model call is a chat)."""
OP_EMBEDDINGS: Final = _gen_ai.GenAiOperationNameValues.EMBEDDINGS.value
"""``gen_ai.operation.name`` of an embeddings call (:meth:`Gateway.embed`)."""
OP_EXECUTE_TOOL: Final = _gen_ai.GenAiOperationNameValues.EXECUTE_TOOL.value
OP_INVOKE_WORKFLOW: Final = _gen_ai.GenAiOperationNameValues.INVOKE_WORKFLOW.value
OP_INVOKE_AGENT: Final = _gen_ai.GenAiOperationNameValues.INVOKE_AGENT.value
EVENT_EVALUATION_RESULT: Final = "gen_ai.evaluation.result"
"""The GenAI event of one evaluation (a judge's verdict), recorded as a span event.

(The installed conventions package defines the event's attributes, not its name.)"""
EVALUATION_LABELS: Final = ("pass", "fail")
TOKEN_INPUT: Final = "input"
"""``gen_ai.token.type`` values."""
TOKEN_OUTPUT: Final = "output"

METRIC_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION

# --- agentmesh.* (no convention exists) ---

RUN_ID: Final = "agentmesh.run.id"
"""The workflow run (on workflow spans, and on any span that knows it)."""
NODE_NAME: Final = "agentmesh.node.name"
NODE_KIND: Final = "agentmesh.node.kind"
"""``planner``, ``executor``, ``tool``, ``judge`` or ``merge``."""
NODE_ROLE: Final = "agentmesh.node.role"
NODE_BRANCH: Final = "agentmesh.node.branch"
"""The branch a node execution served (a fan-out step ``01``...; empty otherwise)."""
NODE_MODELS: Final = "agentmesh.node.models"
"""Models that answered in a node execution, comma-separated."""
NODE_TIME_TO_FIRST_TOKEN: Final = "agentmesh.node.time_to_first_token"
"""Seconds from a node's start to its first streamed token (streamed executions only)."""
MERGE_BRANCHES: Final = "agentmesh.merge.branches"
"""On a merge node's span: the answers merged, ``node`` or ``node[branch]`` (string array)."""
MERGE_MODELS: Final = "agentmesh.merge.models"
"""On a merge node's span: the models that wrote the merged answers (string array)."""
EVALUATION_NODE: Final = "agentmesh.evaluation.node"
"""On ``gen_ai.evaluation.result`` events: the judged node (its span ended before the judge ran)."""
EVALUATION_BRANCH: Final = "agentmesh.evaluation.branch"
"""The judged branch (``01``...; empty when the node did not fan out)."""
EVALUATION_ROUND: Final = "agentmesh.evaluation.round"
"""The judged answer's round (1, then 2 after a rejected verdict sent it back)."""
EVALUATION_MODEL: Final = "agentmesh.evaluation.model"
"""The model that wrote the judged answer."""
EVALUATION_DECISION_ID: Final = "agentmesh.evaluation.decision_id"
"""The routing decision of the judged answer's call (its ``route`` span's id attribute)."""
EVALUATION_GAVE_UP: Final = "agentmesh.evaluation.gave_up"
"""True when the judge rejected the answer for the last time (absent: False)."""
RUN_BUDGET_USD: Final = "agentmesh.run.budget_usd"
"""The run's budget, on the workflow span (absent: the run had none)."""
NODE_VERDICT: Final = "agentmesh.node.verdict"
"""A person's answer on a node that asked one: ``approved``, ``rejected`` or ``answered``."""
RUN_STATUS: Final = "agentmesh.run.status"
"""``ok``, ``failed`` or ``interrupted`` (paused for a person), on the workflow span."""

ROUTE_STRATEGY: Final = "agentmesh.route.strategy"
ROUTE_ROUND: Final = "agentmesh.route.round"
"""The asking step's round on a ``route`` span (``agentmesh.attempt`` numbers a chat span's try)."""
ROUTE_CHOSEN: Final = "agentmesh.route.chosen"
ROUTE_REASON: Final = "agentmesh.route.reason"
ROUTE_CANDIDATES: Final = "agentmesh.route.candidates"
"""Ranked candidate model ids, best first (string array, at most ``ROUTE_LIST_LIMIT``)."""
ROUTE_CANDIDATE_SCORES: Final = "agentmesh.route.candidates.scores"
"""The strategy's score of each listed candidate (double array, same order)."""
ROUTE_CANDIDATE_NOTES: Final = "agentmesh.route.candidates.notes"
"""The strategy's note on each listed candidate (string array, same order; formatted
only for recorded spans: the router keeps notes lazy)."""
ROUTE_CANDIDATE_COUNT: Final = "agentmesh.route.candidates.count"
"""How many candidates there were; set only when the list was cut."""
ROUTE_EXCLUDED: Final = "agentmesh.route.excluded"
"""Excluded models as ``"<model> [<filter>] <why>"`` strings (at most ``ROUTE_LIST_LIMIT``)."""
ROUTE_EXCLUDED_COUNT: Final = "agentmesh.route.excluded.count"
"""How many models were excluded; set only when the list was cut."""
ROUTE_FALLBACKS: Final = "agentmesh.route.fallbacks"
ROUTE_SELECTED: Final = "agentmesh.route.selected"
"""Models called together (consensus); absent when only the chosen one is."""
ROUTE_TASK: Final = "agentmesh.route.task"
ROUTE_RESERVED_USD: Final = "agentmesh.route.reserved_usd"
ROUTE_DECISION_ID: Final = "agentmesh.route.decision_id"
"""On route spans, and on chat spans made on that decision (links attempts to it)."""
ROUTE_OUT_OF_DOMAIN: Final = "agentmesh.route.out_of_domain"
"""A learned router found the prompt outside its training domain (and fell back)."""
ROUTE_DOMAIN_DISTANCE: Final = "agentmesh.route.domain_distance"
"""The prompt's distance to a learned router's training domain (1 = its edge)."""

MODEL_ID: Final = "agentmesh.model_id"
"""Catalog id of the called model (``gen_ai.request.model`` is the provider's wire name)."""
COST_USD: Final = "agentmesh.cost_usd"
SIMULATED: Final = "agentmesh.simulated"
USAGE_ESTIMATED: Final = "agentmesh.usage.estimated"
STREAM_CUT_OFF: Final = "agentmesh.stream.cut_off"
"""A streamed call cut off mid-answer (its consumer left, or a deadline); its usage
attributes are what it is known to have generated, estimated from the text streamed."""
ATTEMPT: Final = "agentmesh.attempt"
"""1 for the first call of a step, 2 for the next (retries and fallbacks count).

On route spans only when it is not 1 (the request's attempt)."""
FALLBACK: Final = "agentmesh.fallback"
"""True when the called model is a fallback, not the decision's chosen model (absent: False)."""
FALLBACK_FROM: Final = "agentmesh.fallback.from"
FALLBACK_TO: Final = "agentmesh.fallback.to"
FALLBACK_REASON: Final = "agentmesh.fallback.reason"
ESCALATION_LEVEL: Final = "agentmesh.escalation.level"
"""How many tiers above the cheapest acceptable one (route and chat spans; absent: 0)."""
ESCALATION_REASON: Final = "agentmesh.escalation.reason"
BREAKER_FROM: Final = "agentmesh.breaker.from_state"
BREAKER_TO: Final = "agentmesh.breaker.state"

PROMPT_TEMPLATE: Final = "agentmesh.prompt.template"
"""Set by ``RenderedPrompt.trace_attributes()`` (with the variant file and the hash)."""
PROMPT_VARIANT: Final = "agentmesh.prompt.variant"
PROMPT_HASH: Final = "agentmesh.prompt.hash"

METRIC_COST: Final = "agentmesh.cost"
METRIC_FALLBACKS: Final = "agentmesh.fallbacks"
METRIC_ESCALATIONS: Final = "agentmesh.escalations"
METRIC_BREAKER_TRANSITIONS: Final = "agentmesh.breaker.transitions"
METRIC_ROUTE_DECISIONS: Final = "agentmesh.route.decisions"

CONTENT_ENV_VAR: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The OpenTelemetry GenAI instrumentations' opt-in variable, honoured when
:func:`agentmesh.tracing.configure` was not told (``true`` turns capture on)."""
