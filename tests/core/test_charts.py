"""The chart renderer: the SVG carries every value exactly, scales bars to the axis, and survives odd input."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest

from core.charts import HEIGHT, bar_chart_svg, markdown_image, svg_data_uri, unicode_bars

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("class") == "bar"]


def test_each_value_is_a_bar_with_its_exact_value_and_a_height_proportional_to_it() -> None:
    values = [0, 3, 7, 20]
    labels = ["00:00", "01:00", "02:00", "03:00"]
    svg = bar_chart_svg(values, labels, "Throughput <per hour> & more")
    root = ET.fromstring(svg)  # well-formed XML: the title's < and & are escaped
    assert root.get("width") is not None and root.get("height") == str(HEIGHT)
    found = bars(svg)
    assert [r.findtext(f"{SVG}title") for r in found] == [f"{lab}: {v}" for lab, v in zip(labels, values, strict=True)]
    heights = [float(r.get("height", "nan")) for r in found]
    assert heights[0] == 0
    assert heights[2] / heights[1] == pytest.approx(7 / 3, rel=1e-2)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "20" in texts and "0" in texts  # the axis top: 20 is already a round number
    assert "Throughput <per hour> & more" in texts


def test_axis_top_is_rounded_up_to_1_2_or_5_times_a_power_of_ten() -> None:
    for top, axis in ((0, "1"), (1, "1"), (3, "5"), (11, "20"), (120, "200"), (4999, "5000")):
        texts = [t.text for t in ET.fromstring(bar_chart_svg([top], ["x"], "t")).iter(f"{SVG}text")]
        assert axis in texts, (top, texts)


def test_all_zero_and_empty_series_render() -> None:
    assert [float(r.get("height", "nan")) for r in bars(bar_chart_svg([0, 0], ["a", "b"], "t"))] == [0, 0]
    assert bars(bar_chart_svg([], [], "t")) == []


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        bar_chart_svg([1, 2], ["a"], "t")
    with pytest.raises(ValueError, match="non-negative"):
        bar_chart_svg([-1], ["a"], "t")


def test_markdown_image_embeds_the_svg_as_a_base64_data_uri() -> None:
    svg = bar_chart_svg([1, 2], ["a", "b"], "t")
    image = markdown_image(svg, "chart [of] things")
    match = re.fullmatch(r"!\[([^\]]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", image)
    assert match is not None
    assert match.group(1) == "chart of things"  # brackets would end the alt text early
    assert base64.b64decode(match.group(2)).decode() == svg
    assert svg_data_uri(svg).startswith("data:image/svg+xml;base64,")


def test_unicode_bars_scale_to_the_largest_value() -> None:
    assert unicode_bars([0, 4, 8]) == " ▄█"
    assert unicode_bars([1, 100]) == "▁█"  # a small non-zero value still shows
    assert unicode_bars([0, 0]) == "  "
    assert unicode_bars([]) == ""
