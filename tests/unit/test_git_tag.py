"""Pure functions of library/git_tag.py: message normalisation, remote URLs, git output parsing."""

from __future__ import annotations

import pytest
from git_tag import normalise_message, parse_ls_remote, parse_tag_object, redact_url, url_has_password


@pytest.mark.parametrize("given, expected", [
    ("Canonical schema release", "Canonical schema release"),
    ("line one  \n\n\n\nline two\n\n", "line one\n\nline two"),
    ("\n\n  lead\r\nnext\t\n", "  lead\nnext"),
    ("# not a comment here\n", "# not a comment here"),
    ("", ""),
])
def test_message_is_compared_after_gits_whitespace_cleanup(given, expected):
    assert normalise_message(given) == expected


@pytest.mark.parametrize("remote, has_password", [
    ("origin", False),
    ("/srv/git/app.git", False),
    ("git@github.com:org/app.git", False),
    ("ssh://git@host/app.git", False),
    ("https://host/app.git", False),
    ("https://bot@host/app.git", False),
    ("https://bot:s3cret@host/app.git", True),
    ("https://bot:@host/app.git", True),
])
def test_remote_urls_that_would_put_a_password_in_argv_are_recognised(remote, has_password):
    assert url_has_password(remote) is has_password


def test_redacted_url_keeps_user_host_and_path_but_not_the_password():
    redacted = redact_url("https://bot:s3cret@git.example.org:8443/org/app.git")
    assert "s3cret" not in redacted
    assert redacted == "https://bot:********@git.example.org:8443/org/app.git"
    assert redact_url("origin") == "origin"


def test_tag_object_headers_and_message_are_split_and_a_signature_is_not_part_of_the_message():
    text = ("object 1111111111111111111111111111111111111111\ntype commit\ntag v1\n"
            "tagger Bot <b@x> 1700000000 +0000\n\nCanonical schema release\n\nbody\n"
            "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n")
    info = parse_tag_object(text)
    assert info["object"] == "1" * 40 and info["type"] == "commit" and info["tag"] == "v1"
    assert normalise_message(info["message"]) == "Canonical schema release\n\nbody"


@pytest.mark.parametrize("listing, expected", [
    ("", {}),
    ("aaa\trefs/tags/v1\nbbb\trefs/tags/v1^{}\n", {"object": "aaa", "peeled": "bbb"}),
    ("ccc\trefs/tags/v1\n", {"object": "ccc"}),
    ("ddd\trefs/tags/v10\neee\trefs/tags/v10^{}\n", {}),  # another tag whose name starts the same
])
def test_ls_remote_output_gives_the_tag_object_and_its_commit(listing, expected):
    assert parse_ls_remote(listing, "v1") == expected
