"""Product pictures: well-formed SVG whatever the product is called, and nothing external."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from types import SimpleNamespace

from personalize.demo.catalog import demo_products
from personalize.demo.images import product_svg
from personalize.records import ProductRecord

SVG = "{http://www.w3.org/2000/svg}"


def test_every_demo_product_has_a_well_formed_svg():
    for product in demo_products():
        root = ET.fromstring(product_svg(product))
        assert root.tag == f"{SVG}svg"
        assert root.find(f"{SVG}title").text == product.title


def test_markup_in_a_title_stays_text():
    title = "Tom & Jerry <script>alert(\"x\")</script> 'quoted' > 3"
    product = ProductRecord(
        id="P9", title=title, category="Kitchen", attributes={"brand": "A&B <Co>"}
    )
    svg = product_svg(product)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == title
    assert root.get("aria-label") == title
    assert "<script" not in svg
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "A&B <CO>" in texts


def test_characters_xml_forbids_are_dropped():
    product = ProductRecord(id="P10", title="Bell\x07 Jar\x00", category="Garden")
    root = ET.fromstring(product_svg(product))
    assert root.find(f"{SVG}title").text == "Bell Jar"


def test_long_names_wrap_into_at_most_two_lines():
    product = ProductRecord(
        id="P11", title="An Extraordinarily Long Product Name That Goes On And On Forever"
    )
    lines = [t.text for t in ET.fromstring(product_svg(product)).iter(f"{SVG}text")]
    assert 1 <= len(lines) <= 2
    assert all(len(line) <= 24 for line in lines)


def test_stored_products_and_unknown_categories_work_too():
    stored = SimpleNamespace(
        external_id="X1", id=17, title="Mystery box", category="Surprises", attributes=None
    )
    root = ET.fromstring(product_svg(stored))
    assert root.find(f"{SVG}title").text == "Mystery box"


def test_pictures_are_deterministic_and_differ_by_category():
    a, b = demo_products()[0], demo_products()[-1]
    assert product_svg(a) == product_svg(a)
    assert a.category != b.category
    fill = lambda svg: ET.fromstring(svg).find(f"{SVG}rect").get("fill")  # noqa: E731
    assert fill(product_svg(a)) != fill(product_svg(b))


def test_nothing_is_loaded_from_elsewhere():
    svg = product_svg(demo_products()[0])
    assert "href" not in svg
    assert svg.count("http") == 1  # the SVG namespace only
    assert "@import" not in svg and "url(" not in svg
