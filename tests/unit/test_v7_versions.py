"""Versions kept current (issue 19): each model version's parameters, refused precisely
before anything is spent, and the versions /prefs offers."""

from __future__ import annotations

import pytest

from bot.prompt_check import (
    CURRENT_VERSIONS,
    DEFAULT_VERSION,
    BannedWords,
    ModelVersion,
    Versions,
    check_midjourney_parameters,
    check_prompt,
    parse_version,
    prompt_version,
)

LINK = "https://cdn.example/ref.png"


@pytest.mark.parametrize(
    "prompt",
    [
        f"a fox --oref {LINK} --ow 400",  # the default is V7
        f"a fox --v 7 --oref {LINK} --ow 1000 --draft --exp 50 --q 2",
        "a fox --v 7 --q 4",
        f"a fox --v 6.1 --cref {LINK} --cw 40",
        f"a fox --niji 6 --cref {LINK}",
        f"a fox --v 7 --sref {LINK} --sw 250 --sv 6 --p abc123 --raw",
        f"{LINK} a fox --iw 2 --v 6",
        "a fox --niji 7 --draft",  # undocumented on niji 7: passed, the provider decides
        "a fox --niji 6 --style raw",
    ],
)
def test_parameters_each_version_takes_pass(prompt: str) -> None:
    assert check_midjourney_parameters(prompt) is None


@pytest.mark.parametrize(
    ("prompt", "needles"),
    [
        # V7-only parameters on V6: the member learns what to use instead.
        (f"a fox --v 6.1 --oref {LINK}", ["--oref", "only with Midjourney V7", "--cref", "6.1"]),
        (f"a fox --v 6 --ow 100 --oref {LINK}", ["--ow", "V7"]),
        ("a fox --v 6.1 --draft", ["--draft", "V7", "--v 6.1"]),
        ("a fox --niji 6 --exp 10", ["--exp", "niji 6"]),
        ("a fox --v 6 --q 4", ["--q 4", "V7"]),
        # The reverse: V6-only parameters on V7 (given, or the default).
        (f"a fox --cref {LINK}", ["--cref", "V6", "--oref", "the default"]),
        (f"a fox --v 7 --cref {LINK} --cw 50", ["--cref", "--oref", "--v 7"]),
        ("a fox --hd", ["--hd", "V8"]),
        ("a fox --niji 6 --raw", ["--style raw"]),
        (f"a fox --oref {LINK} --q 4", ["--q 4", "--oref"]),
    ],
)
def test_a_parameter_the_version_refuses_gets_a_precise_answer(
    prompt: str, needles: list[str]
) -> None:
    problem = check_midjourney_parameters(prompt)
    assert problem is not None, prompt
    assert problem.code == "conflicting_parameters"
    for needle in needles:
        assert needle in problem.message, problem.message


def test_a_version_the_service_does_not_take_is_refused_by_name() -> None:
    problem = check_midjourney_parameters("a fox --v 8.1")
    assert problem is not None and "--v 8.1" in problem.message
    assert "V7" in problem.message and "niji 7" in problem.message
    # Where a provider takes V8, the setting says so and the prompt passes (with --hd).
    v8 = Versions(v=(*CURRENT_VERSIONS.v, "8", "8.1"))
    assert check_midjourney_parameters("a fox --v 8.1 --hd --q 4", versions=v8) is None


def test_check_prompt_runs_the_version_rules() -> None:
    banned = BannedWords([])
    problem = check_prompt(f"a fox --v 6 --oref {LINK}", banned=banned, max_length=500)
    assert problem is not None and "--oref" in problem.message


def test_versions_parse_and_default() -> None:
    assert ModelVersion("v", "7") == DEFAULT_VERSION
    assert parse_version("V6.1") == ModelVersion("v", "6.1")
    assert parse_version("--niji 7") == ModelVersion("niji", "7")
    assert parse_version("7") == ModelVersion("v", "7")
    assert parse_version("v 9.9") is None and parse_version("banana") is None
    assert prompt_version("a fox --niji") == ModelVersion("niji", "6")
    assert prompt_version("a fox") == DEFAULT_VERSION
    labels = [m.label for m in CURRENT_VERSIONS.choices()]
    assert labels == ["V7", "V6.1", "V6", "niji 7", "niji 6"]
