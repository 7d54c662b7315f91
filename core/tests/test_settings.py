"""Parsing the core settings alone (no environment, no files, no plugins)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionhub import ConfigError, SessionHubSettings
from sessionhub.settings import mask_url


def test_ttl_formats():
    assert SessionHubSettings.isolated(session_ttl="P7D").session_ttl == timedelta(days=7)
    assert SessionHubSettings.isolated(session_ttl=90).session_ttl == timedelta(seconds=90)
    assert SessionHubSettings.isolated(session_ttl="90").session_ttl == timedelta(seconds=90)
    assert SessionHubSettings.isolated(session_ttl="30m").session_ttl == timedelta(minutes=30)
    assert SessionHubSettings.isolated(session_ttl="12h").session_ttl == timedelta(hours=12)
    assert SessionHubSettings.isolated(session_ttl="7d").session_ttl == timedelta(days=7)


def test_isolated_settings_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("SESSIONHUB_EVENT_LIMIT", "3")
    assert SessionHubSettings.isolated().event_limit is None


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        (
            "mongodb+srv://user:p%40ss@cluster/db?w=majority",
            "mongodb+srv://user:***@cluster/db?w=majority",
        ),
        ("redis://user@host", "redis://user@host"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgres://h/db?password=pw&x=1", "postgres://h/db?password=***&x=1"),
        (
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=pw&tlsCertificateKeyFile=/k.pem",
            "mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&tlsCertificateKeyFile=%2Fk.pem",
        ),
        (
            "mongodb://h/?tlscertificatekeyfilepassword=pw",
            "mongodb://h/?tlscertificatekeyfilepassword=***",
        ),
        (
            "http://h/?apiKey=k&sig=s&Access_Token=t",
            "http://h/?apiKey=***&sig=***&Access_Token=***",
        ),
        (
            "mongodb://h/?authMechanismProperties=AWS_SESSION_TOKEN:t",
            "mongodb://h/?authMechanismProperties=***",
        ),
        (":pw@host:6379/0", "***@host:6379/0"),
    ],
)
def test_mask_url(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "setting", ["session_ttl", "app_state_ttl", "user_state_ttl", "purge_interval"]
)
@pytest.mark.parametrize(
    "value", ["3000000d", 10**12, 10**400, "inf", "1e400", "P99999D", timedelta(days=10**6)]
)
def test_durations_beyond_a_hundred_years_are_refused(setting, value):
    with pytest.raises(ConfigError) as info:
        SessionHubSettings.isolated(**{setting: value})
    message = str(info.value)
    assert message.startswith(f"Invalid sessionhub setting {setting} (from a constructor argument)")
    assert "100 years" in message or "not a duration" in message


def test_durations_in_words_and_their_limits():
    assert SessionHubSettings.isolated(session_ttl="7 days").session_ttl == timedelta(days=7)
    assert SessionHubSettings.isolated(session_ttl="90 min").session_ttl == timedelta(minutes=90)
    assert SessionHubSettings.isolated(session_ttl="36525d").session_ttl == timedelta(days=36525)
    with pytest.raises(ConfigError, match="must be a positive duration"):
        SessionHubSettings.isolated(session_ttl="-5")
