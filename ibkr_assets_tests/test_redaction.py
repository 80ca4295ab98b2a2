"""One redaction helper for every message, log line, repr and viewer answer."""

from __future__ import annotations

from ibkr_assets.redaction import mask, redact, redact_text

SECRET = "s3cr3t-pw"


def test_a_url_keeps_everything_but_its_password() -> None:
    url = f"postgresql+psycopg2://user:{SECRET}@db:5432/lineage"
    assert redact_text(url) == "postgresql+psycopg2://user:***@db:5432/lineage"
    assert redact_text("sqlite:////data/lineage.db") == "sqlite:////data/lineage.db"
    assert redact_text("postgresql://user@db/x") == "postgresql://user@db/x"


def test_urls_inside_text_and_secret_parameters_are_masked() -> None:
    text = f"could not reach postgresql://u:{SECRET}@db/x nor http://h/p?token={SECRET}&a=1"
    assert SECRET not in redact_text(text)
    assert "a=1" in redact_text(text)
    assert redact({"a": [f"http://u:{SECRET}@h"], "n": 1}) == {"a": ["http://u:***@h"], "n": 1}


def test_mask_hides_known_secrets_wherever_they_appear() -> None:
    message = f"FATAL: password authentication failed ({SECRET})"
    assert mask(message, [SECRET, None, "x"]) == "FATAL: password authentication failed (***)"
