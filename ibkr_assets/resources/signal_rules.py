"""The signal-rules resource: sanity limits a proposal must meet before it is actionable."""

from __future__ import annotations

import dagster as dg

from ibkr_assets.domain.signal import SignalRules


class SignalRulesResource(dg.ConfigurableResource):
    """Sanity limits a proposal must meet before its signal is actionable."""

    min_risk_reward: float = 1.5
    max_entry_distance_pct: float = 3.0
    min_confidence: int = 60

    def rules(self) -> SignalRules:
        return SignalRules(self.min_risk_reward, self.max_entry_distance_pct, self.min_confidence)
