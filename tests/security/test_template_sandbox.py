"""Journey email templates are typed by editors and rendered by the web process (a test send) and
by the workers (every email). The sandbox keeps them from the server's insides; these tests also
hold every way a short template could make a rendering huge, endless or recursive to one rule: it
fails as a template error (a ``ValueError`` saying why, which fails the step or the test send) and
never takes the process's memory or time. Found by an outside review, each reproduced on the old
code first (a 300 MB string in half a second, 9 million empty loop turns, a RecursionError 500)."""

from __future__ import annotations

import copy
import re
import resource
import time

import pytest

from personalize.journeys.email import MAX_ITERATIONS, MAX_OUTPUT, MAX_TEXT, render

CONTEXT = {"contact": {"first_name": "ann", "email": "ann@example.com", "attributes": {"tier": "gold"}},
           "recommendations": [{"title": "<b>Shoe</b>", "price": 123456.5, "url": "https://shop.example/p/1"}],
           "shop": {"name": "Shop", "url": "https://shop.example"}}

BOMBS = {
    "string repeated": "{{ ('x' * 300000000)|length }}",
    "list repeated": "{{ ([1] * 300000000)|length }}",
    "joined to itself by recursion": "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ d('x', 40) }}",
    "doubled in a namespace": "{% set ns = namespace(v='x') %}{% for i in range(40) %}{% set ns.v = ns.v ~ ns.v %}{% endfor %}{{ ns.v|length }}",
    "added to itself": "{% set ns = namespace(v=['x']) %}{% for i in range(40) %}{% set ns.v = ns.v + ns.v %}{% endfor %}{{ ns.v|length }}",
    "padded by a method": "{{ 'x'.ljust(300000000)|length }}",
    "zero-filled": "{{ 'x'.zfill(300000000)|length }}",
    "tabs expanded": "{{ '\t'.expandtabs(300000000)|length }}",
    "centred by a filter": "{{ 'x'|center(300000000)|length }}",
    "indented": "{{ ('x\n' * 1000)|indent(100000)|length }}",
    "indented by a string": "{{ ('x\n' * 1000)|indent(' ' * 100000)|length }}",
    "sliced into a billion": "{{ range(10)|slice(1000000000)|list|length }}",
    "percent width": "{{ '%0300000000d'|format(1)|length }}",
    "percent width from an argument": "{{ '%*d' % (300000000, 1) }}",
    "format width": "{{ '{:300000000}'.format(1)|length }}",
    "format width from an argument": "{{ '{:{}}'.format(1, 300000000)|length }}",
    "replace of the empty string": "{% set s = 'x' * 20000 %}{{ s.replace('', s)|length }}",
    "replace filter": "{% set s = 'x' * 20000 %}{{ s|replace('', s)|length }}",
    "joined by a huge separator": "{{ range(100000)|join('x' * 100000)|length }}",
    "joined by a method": "{{ ('x' * 100000).join(range(90000)|map('string'))|length }}",
    "a huge power": "{{ (9 ** 9999999)|string|length }}",
    "squared in a loop": "{% set ns = namespace(v=2 ** 64) %}{% for i in range(40) %}{% set ns.v = ns.v * ns.v %}{% endfor %}{{ ns.v > 1 }}",
    "nested empty loops": "{% for a in range(30000) %}{% for b in range(30000) %}{% endfor %}{% endfor %}done",
    "a recursive loop": "{% for x in range(100) recursive %}{% if loop.depth < 6 %}{{ loop(range(100)) }}{% endif %}{% endfor %}",
    "static text in a loop": "{% for i in range(20000) %}" + "z" * 10000 + "{% endfor %}",
    "output of a macro": "{% macro m() %}{% for i in range(20000) %}{{ 'y' * 100000 }}{% endfor %}{% endmacro %}{{ m()|length }}",
    "endless recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
}


@pytest.fixture
def memory_ceiling():
    """1.5 GB more than now for this process: a template that gets past the limits fails the test
    with a MemoryError instead of taking the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 1_500_000_000, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_template_that_would_grow_or_run_without_end_fails_as_a_template(name, memory_ceiling):
    started = time.process_time()
    with pytest.raises(ValueError) as refused:
        render(BOMBS[name], CONTEXT, html=True)
    message = str(refused.value)
    assert "does too much" in message or "calls itself without end" in message, message
    assert "ran out of memory" not in message, f"{name}: stopped by the memory ceiling, not by a limit"
    assert time.process_time() - started < 5, name  # a bound, not a speed figure: the old code ran for minutes


ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''|attr('__class__') }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ recommendations.__class__ }}",
    "{{ contact.attributes.pop('tier') }}",
    "{{ recommendations.append(1) }}",
    "{{ contact.update({'a': 1}) }}",
    "{{ ''.format.__globals__ }}",
    "{{ '{0.__class__}'.format('') }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_nothing_of_the_server_is_reachable_and_the_context_cannot_be_changed(source):
    with pytest.raises(ValueError):
        render(source, CONTEXT, html=True)
    assert CONTEXT["contact"]["attributes"] == {"tier": "gold"} and len(CONTEXT["recommendations"]) == 1


@pytest.mark.parametrize("name", ["config", "request", "session", "g", "url_for", "get_flashed_messages", "app", "environ", "os", "settings"])
def test_the_applications_objects_are_not_in_a_template(name):
    assert render("{{ " + name + " }}|{{ " + name + ".SECRET_KEY }}", CONTEXT, html=True) == "|"


def test_what_an_email_template_does_still_works_within_the_limits():
    source = (
        "Hi {{ contact.first_name|title }}{% for r in recommendations %} {{ loop.index }}. {{ r.title }} "
        "{{ '%.2f'|format(r.price) }} {{ '{:,.2f}'.format(r.price) }}{% else %}none{% endfor %}"
        " {{ contact.attributes.tier|upper }} {{ 'a_b'.replace('_', ' ') }} {{ ', '.join(['x', 'y']) }} {{ 1234567 * 3 }}"
        " {{ 2 ** 10 }} {{ 'x' ~ 'y' }} {{ [1] + [2] }} {{ '-' * 3 }} {{ 'ab'|center(6) }}|{{ 'a very long title'|truncate(9, leeway=0) }}"
        "{% set block %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %} {{ block }}"
    )
    out = render(source, CONTEXT, html=True)
    assert out == ("Hi Ann 1. &lt;b&gt;Shoe&lt;/b&gt; 123456.50 123,456.50 GOLD a b x, y 3703701 1024 xy [1, 2] ---   ab  |a... 012")
    assert render("{% for i in range(" + str(MAX_ITERATIONS) + ") %}{% endfor %}ok", CONTEXT, html=False) == "ok"
    assert len(render("{{ 'x' * " + str(MAX_TEXT) + " }}", CONTEXT, html=False)) == MAX_TEXT
    assert len(render("{% for i in range(5) %}{{ 'x' * " + str(MAX_OUTPUT // 5) + " }}{% endfor %}", CONTEXT, html=False)) == MAX_OUTPUT


def test_a_template_bomb_in_a_test_send_is_a_message_not_a_server_error(client, site, ctx):
    """The admin's test send renders in the web process: the editor reads why, the server goes on."""
    from admin.conftest import make_user, post, sign_in
    from personalize.journeys.email import save_settings
    from personalize.journeys.store import get_journey, save_definition

    ctx.config["SEGMENT_REBUILD_INLINE"] = True
    make_user("ed@shop.example", "editor", [site.id])
    sign_in(client, "ed@shop.example")
    post(client, f"/admin/sites/{site.id}/journeys", {"template": "welcome", "key": "w"})
    save_settings(site.id, {"delivery": "record", "timezone": "UTC", "from_email": "shop@shop.example"}, ctx.config)
    journey = get_journey(site.id, "w")
    for bomb in (BOMBS["nested empty loops"], BOMBS["endless recursion"], BOMBS["string repeated"]):
        definition = copy.deepcopy(journey.definition)
        email = next(s for s in definition["steps"] if s["type"] == "email")
        email["html"] = bomb
        save_definition(journey, definition)
        r = post(client, f"/admin/sites/{site.id}/journeys/w/steps/{email['id']}/test", {"to": "me@shop.example"}, follow_redirects=True)
        assert r.status_code == 200
        page = r.get_data(as_text=True)
        assert "does too much" in page or "calls itself without end" in page, re.findall(r"class=\"flash[^>]*>[^<]*", page)
