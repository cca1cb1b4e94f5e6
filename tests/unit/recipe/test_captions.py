"""Trigger rule and caption composition."""

import pytest

from core.recipe.captions import (
    TriggerError,
    compose_caption,
    ensure_trigger,
    is_valid_trigger,
    spoken_words,
    validate_trigger,
)


@pytest.mark.parametrize("trigger", ["ema_voice", "EMA-2", "x", "voice42"])
def test_valid_triggers(trigger):
    assert validate_trigger(trigger) == trigger


@pytest.mark.parametrize(
    ("trigger", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("ema voice", "ema_voice"),
        ("ema,voice", "','"),
        ("émä", "letters A-Z"),
        ("__", "letter or digit"),
        ("a" * 65, "characters long"),
    ],
)
def test_invalid_triggers_explain_the_fix(trigger, fragment):
    assert not is_valid_trigger(trigger)
    with pytest.raises(TriggerError, match=fragment):
        validate_trigger(trigger)


def test_compose_full_caption_in_the_recommended_shape():
    caption = compose_caption(
        "ema_voice",
        visual="a young woman in a quiet indoor room",
        voice="soft, calm voice",
        transcript="I think we should start again",
        sounds="clear female speech, quiet room tone, no music",
    )
    assert caption == (
        'ema_voice, a young woman in a quiet indoor room, soft, calm voice. '
        'Speech: "I think we should start again". '
        "Sounds: clear female speech, quiet room tone, no music."
    )


def test_compose_leaves_out_empty_parts_without_stray_punctuation():
    assert compose_caption("ema_voice", transcript="Hello there") == 'ema_voice. Speech: "Hello there".'
    assert compose_caption("ema_voice", visual="a man", sounds="rain") == "ema_voice, a man. Sounds: rain."
    assert compose_caption("ema_voice") == "ema_voice"
    assert compose_caption(None, visual="a man.", voice="deep voice") == "a man, deep voice."


def test_compose_does_not_double_sentence_punctuation_or_quotes():
    caption = compose_caption("t1", voice="deep voice.", transcript='"Is it you?"')
    assert caption == 't1, deep voice. Speech: "Is it you?"'


def test_override_replaces_body_but_keeps_trigger_first():
    assert compose_caption("ema_voice", visual="ignored", text_override="a free caption") == (
        "ema_voice, a free caption"
    )
    assert compose_caption("ema_voice", text_override="ema_voice speaks") == "ema_voice speaks"
    assert compose_caption("ema_voice", visual="v", text_override="   ") == "ema_voice, v."


def test_compose_refuses_an_invalid_trigger():
    with pytest.raises(TriggerError):
        compose_caption("two words", visual="x")


def test_ensure_trigger_prepends_only_when_missing():
    assert ensure_trigger("a woman speaks", "ema") == "ema, a woman speaks"
    assert ensure_trigger("ema, a woman speaks", "ema") == "ema, a woman speaks"
    assert ensure_trigger("ema a woman speaks", "ema") == "ema a woman speaks"
    # A longer word that merely starts with the trigger is not the trigger.
    assert ensure_trigger("emanuel speaks", "ema") == "ema, emanuel speaks"
    assert ensure_trigger("ema_voice speaks", "ema") == "ema, ema_voice speaks"
    assert ensure_trigger("", "ema") == "ema"
    assert ensure_trigger("  text  ", None) == "text"


def test_spoken_words_are_read_back_from_the_speech_part():
    caption = compose_caption("ema_voice", visual="a woman", voice="calm voice", transcript="We start again!",
                              sounds="rain")
    assert spoken_words(caption) == "We start again!"
    assert spoken_words('ema_voice. Speech: "I said "no" twice." Sounds: rain.') == 'I said "no" twice.'  # inner quotes
    assert spoken_words('ema_voice, a man. Speech: “Hello  there.”') == "Hello there."
    assert spoken_words(compose_caption("ema_voice", transcript="we start again")) == "we start again"
    assert spoken_words("ema_voice, a woman says hello") is None
    assert spoken_words('Speech: "" Sounds: rain.') is None and spoken_words(None) is None
