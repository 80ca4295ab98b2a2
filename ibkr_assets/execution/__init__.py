"""From a signal to an order at the broker: the decision (pure) and the idempotent placement."""
