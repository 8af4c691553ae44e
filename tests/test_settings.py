"""Settings: environment, command-line overrides, tokens, and documentation that keeps up."""
from dataclasses import fields
from pathlib import Path

import pytest

from diavo.server.settings import Settings, from_environment, read_tokens

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def test_defaults_and_overrides(tmp_path):
    s = from_environment(tmp_path, env={})
    assert s.root == tmp_path and s.port == 8000 and not s.auth_required
    assert s.jobs_dir == tmp_path / "uws"
    s = from_environment(tmp_path, env={"DIAVO_PORT": "9001", "DIAVO_MAXREC_DEFAULT": "5",
                                        "DIAVO_ALLOW_PRIVATE_UPLOAD_URLS": "true",
                                        "DIAVO_STATE_DIR": str(tmp_path / "st")}, port=9002)
    assert s.port == 9002 and s.maxrec_default == 5 and s.allow_private_upload_urls
    assert s.jobs_dir == tmp_path / "st"
    assert s.clamp_maxrec(None) == 5 and s.clamp_maxrec(10**12) == s.maxrec_hard


def test_tokens_from_env_and_file(tmp_path):
    f = tmp_path / "tokens"
    f.write_text("# operators' tokens\nabc123 alice\n\nxyz789   # no owner\n")
    assert read_tokens(f.read_text()) == {"abc123": "alice", "xyz789": "user-xyz789"}
    s = from_environment(tmp_path, env={"DIAVO_TOKENS_FILE": str(f), "DIAVO_TOKENS": "t1:bob,t2"})
    assert s.tokens == {"abc123": "alice", "xyz789": "user-xyz789", "t1": "bob", "t2": "user-t2"}
    assert s.auth_required


def test_bad_number_is_refused(tmp_path):
    with pytest.raises(ValueError):
        from_environment(tmp_path, env={"DIAVO_PORT": "eighty"})


def test_every_setting_is_documented():
    text = DOCS.read_text()
    missing = [f.name for f in fields(Settings) if f.name != "root" and f"`{f.name}`" not in text]
    assert not missing, f"settings missing from docs/operations.md: {missing}"
