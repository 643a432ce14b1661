"""The page's sliders as data: their spans lie inside the config's own rules (config.RANGES), and a value outside
is refused in words that name the field and its range."""

import pytest

from medtune.config import RANGES
from medtune.ui.settings import page_settings


@pytest.mark.parametrize("context", [None, 16, 8192])
def test_every_slider_span_lies_inside_its_config_rule(context):
    rules = {key: ok for key, ok, _ in RANGES}
    for setting in page_settings(context, 512):
        assert rules[setting.key](setting.minimum) and rules[setting.key](setting.maximum)
        assert setting.minimum < setting.maximum


def test_max_tokens_reaches_the_context_window_or_the_configured_budget():
    assert page_settings(8192, 512)[1].maximum == 8192
    assert page_settings(256, 512)[1].maximum == 512 and page_settings(None, 512)[1].maximum == 512


def test_the_message_carries_the_configs_own_words():
    temperature, max_tokens = page_settings(2048, 512)
    texts = {key: text for key, _, text in RANGES}
    with pytest.raises(ValueError, match=r"^Max tokens must be a whole number, at least 1 \(generation.max_tokens\)"):
        max_tokens.check(0)
    assert texts["generation.temperature"] in temperature.describe()
    assert (temperature.check(0.7), max_tokens.check(2048.0)) == (0.7, 2048)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "1", [1], 2048.5])
def test_what_is_not_a_number_in_range_is_refused(value):
    with pytest.raises(ValueError, match=r"Max tokens must be"):
        page_settings(4096, 512)[1].check(value)
