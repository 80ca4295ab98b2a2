"""LLM chart analysis: versioned prompts, analysts that fill ``SignalProposal``, a replay cache.

Pure logic, no Dagster: ``prompts`` loads and renders the versioned templates, ``analysts``
holds the deterministic rules analyst (the offline default) and the OpenAI-compatible one,
both validated through one ``parse_response`` that fails closed to HOLD, and ``cache`` keys
every call by what was asked so a run can be repeated without spending tokens (``replay``).
"""
