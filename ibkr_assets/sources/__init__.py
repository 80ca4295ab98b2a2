"""Market-data sources. Each returns a bar frame (see ``ibkr_assets.domain.bars``)."""
