"""Email, built in: a site's SMTP settings, templates in a sandbox, each contact's own
recommendations, the consent rule, unsubscribe links (RFC 8058 one-click), and sending.

Templates are Jinja in a sandboxed environment (:class:`ImmutableSandboxedEnvironment`):
a template can read what it is given (``contact``, ``recommendations``, ``trigger``,
``shop``, ``unsubscribe_url``…) and nothing else of the server. HTML is escaped by
default. Every message carries ``List-Unsubscribe`` (the one-click address and, when
the site sets a reply address, nothing else) and ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``, and a ``Message-ID`` built from the step's idempotency
key, so a message re-sent after a crash has the same id as the first attempt.

Every SMTP connection is opened by :func:`_smtp_connection`, the one place the
outbound address policy applies to mail.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import smtplib
import ssl
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser
from string import Formatter
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from jinja2 import ChainableUndefined, TemplateError, TemplateSyntaxError, nodes, pass_context
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup, escape

from ..db import db
from ..models import utcnow
from ..validation import InvalidInput
from .models import JourneySettings

SECURITY = ("starttls", "ssl", "none")
DELIVERY = ("smtp", "record")
CONSENT_MODES = ("opt_in", "customers")
EMAIL_RE = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
SMTP_TIMEOUT = 20.0
UNSUBSCRIBE_PATH = "/email/unsubscribe/"

# consent signals connectors already bring in as attributes (docs/journeys.md, "Consent")
REFUSED = {
    "email_status": {"unsubscribed", "cleaned", "archived"},  # Mailchimp's member status
    "email_marketing": {"UNSUBSCRIBED", "REDACTED", "INVALID"},  # Shopify's marketingState
}
GRANTED = {"email_status": {"subscribed"}, "email_marketing": {"SUBSCRIBED"}}


# ---------------------------------------------------------------- settings


def get_settings(site_id: int) -> JourneySettings:
    """The site's journey settings (defaults when it has none yet; nothing is written)."""
    row = db.session.get(JourneySettings, site_id)
    if row is None:
        row = JourneySettings(site_id=site_id, delivery="smtp", smtp_port=587, smtp_security="starttls", timezone="UTC", consent="opt_in",
                              smtp_host="", smtp_username="", smtp_password="", from_email="", from_name="", reply_to="",
                              shop_url="", server_url="", postal_address="", webhook_secret="")
    return row


def time_zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA time zone ``name`` (``Europe/Paris``), or None when it is not one."""
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name or name.startswith("/"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _check_http_base(value: str, field_name: str) -> str:
    value = (value or "").strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidInput(field_name, "must be an address such as https://shop.example")
    return value


def save_settings(site_id: int, values: Mapping[str, Any], config: Mapping[str, Any]) -> JourneySettings:
    """Validate and store a site's settings; a blank ``smtp_password`` keeps the stored one. Commits."""
    from ..sync.secrets import encrypt

    row = db.session.get(JourneySettings, site_id)
    if row is None:
        row = get_settings(site_id)
        db.session.add(row)
    host = str(values.get("smtp_host") or "").strip()
    if len(host) > 255 or (host and not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]+", host)):
        raise InvalidInput("smtp_host", "must be a host name such as smtp.example.com")
    try:
        port = int(values.get("smtp_port") or 587)
    except (TypeError, ValueError):
        raise InvalidInput("smtp_port", "must be a port number such as 587") from None
    if not 1 <= port <= 65535:
        raise InvalidInput("smtp_port", "must be a port number from 1 to 65535")
    security = values.get("smtp_security") or "starttls"
    if security not in SECURITY:
        raise InvalidInput("smtp_security", f"must be one of {', '.join(SECURITY)}")
    for name in ("from_email", "reply_to"):
        address = str(values.get(name) or "").strip()
        if address and not EMAIL_RE.match(address):
            raise InvalidInput(name, "must be an email address such as shop@example.com")
    tz = str(values.get("timezone") or "UTC")
    if zone(tz) is None:
        raise InvalidInput("timezone", "must be a time zone such as Europe/Paris")
    consent = values.get("consent") or "opt_in"
    if consent not in CONSENT_MODES:
        raise InvalidInput("consent", f"must be one of {', '.join(CONSENT_MODES)}")
    delivery = values.get("delivery") or "smtp"
    if delivery not in DELIVERY:
        raise InvalidInput("delivery", "must be smtp or record")
    row.delivery = delivery
    row.smtp_host, row.smtp_port, row.smtp_security = host, port, security
    row.smtp_username = str(values.get("smtp_username") or "").strip()[:255]
    password = values.get("smtp_password")
    if password:
        row.smtp_password = encrypt(config, {"password": str(password)})
    elif values.get("clear_password"):
        row.smtp_password = ""
    row.from_email = str(values.get("from_email") or "").strip()
    row.from_name = str(values.get("from_name") or "").strip()[:200].replace("\n", " ").replace("\r", " ")
    row.reply_to = str(values.get("reply_to") or "").strip()
    row.shop_url = _check_http_base(str(values.get("shop_url") or ""), "shop_url")
    row.server_url = _check_http_base(str(values.get("server_url") or ""), "server_url")
    row.postal_address = str(values.get("postal_address") or "").strip()[:500]
    row.timezone, row.consent = tz, consent
    row.updated_at = utcnow()
    db.session.commit()
    return row


def smtp_password(row: JourneySettings, config: Mapping[str, Any]) -> str:
    from ..sync.secrets import decrypt

    return str(decrypt(config, row.smtp_password).get("password") or "") if row.smtp_password else ""


def server_base(row: JourneySettings, config: Mapping[str, Any]) -> str:
    """Where unsubscribe links point: the site's setting, else the server's PUBLIC_URL."""
    return (row.server_url or str(config.get("PUBLIC_URL") or "")).rstrip("/")


def missing_for_sending(row: JourneySettings, config: Mapping[str, Any]) -> str | None:
    """What the settings lack before a message can go out (None when complete)."""
    if row.delivery == "record":
        return None
    if not row.smtp_host:
        return "the site has no SMTP server; fill in the email settings of its journeys"
    if not row.from_email:
        return "the site has no sender address; fill in the email settings of its journeys"
    if not server_base(row, config):
        return "unsubscribe links need the server's public address: set it in the email settings (or PUBLIC_URL)"
    return None


# ---------------------------------------------------------------- consent


@dataclass
class Contact:
    """What sending to one person needs to know about them."""

    profile_id: int
    email: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    orders: int = 0
    visitor: str | None = None
    customer_id: str | None = None


def email_consent(contact: Contact, mode: str) -> str | None:
    """Why this contact may not get marketing email, or None when they may (docs/journeys.md).

    An email address is needed; ``unsubscribed_email`` true refuses; a refusal a connector
    brought in (Mailchimp ``email_status`` unsubscribed/cleaned, Shopify ``email_marketing``
    UNSUBSCRIBED…) or ``email_consent`` false refuses. Then ``opt_in`` (the default) needs a
    positive signal: ``email_consent`` true, Mailchimp ``subscribed`` or Shopify ``SUBSCRIBED``;
    ``customers`` also takes a person who has ordered (the "soft opt-in" some laws allow).
    """
    attrs = contact.attributes
    if not contact.email or not EMAIL_RE.match(contact.email):
        return "no email address"
    if attrs.get("unsubscribed_email") is True:
        return "unsubscribed"
    if attrs.get("email_consent") is False:
        return "no consent (email_consent is false)"
    for name, values in REFUSED.items():
        if attrs.get(name) in values:
            return f"no consent ({name} is {attrs[name]})"
    if attrs.get("email_consent") is True or any(attrs.get(n) in v for n, v in GRANTED.items()):
        return None
    if mode == "customers" and contact.orders > 0:
        return None
    return "no consent to marketing email" + (" (and no order yet)" if mode == "customers" else "")


# ---------------------------------------------------------------- unsubscribe links


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(site_id: int, profile_id: int) -> str:
    """A link token naming one person of one site, signed with the site's signing secret."""
    from ..profiles.trust import signing_secret

    body = _b64(json.dumps({"s": site_id, "p": profile_id}, separators=(",", ":")).encode())
    mac = hmac.new(signing_secret(site_id).encode(), b"unsubscribe:" + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac[:20])}"


def read_unsubscribe_token(token: str) -> tuple[int, int] | None:
    """``(site id, profile id)`` of a valid token; None for anything else."""
    from ..profiles.trust import signing_secret
    from ..sites import get_site

    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 300 or not token.isascii():
        return None
    body, mac = token.split(".")
    try:
        payload = json.loads(_unb64(body))
        given = _unb64(mac)
    except (ValueError, TypeError):
        return None
    if not isinstance(payload, dict):
        return None
    site_id, profile_id = payload.get("s"), payload.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**62 for v in (site_id, profile_id)):
        return None
    if get_site(site_id) is None:
        return None
    expected = hmac.new(signing_secret(site_id).encode(), b"unsubscribe:" + body.encode(), hashlib.sha256).digest()[:20]
    if not hmac.compare_digest(expected, given):
        return None
    return site_id, profile_id


def unsubscribe(site_id: int, profile_id: int) -> bool:
    """Set ``unsubscribed_email`` on the person (their profile, or the one it was merged into). Commits."""
    from ..profiles import set_attributes
    from ..profiles.merge import resolve_profile_id

    live = resolve_profile_id(site_id, profile_id)
    if live is None:
        return False
    set_attributes(site_id, live, {"unsubscribed_email": True}, "unsubscribe")
    return True


# ---------------------------------------------------------------- templates


class _Undefined(ChainableUndefined):
    """A missing value renders empty at any depth (``trigger.product.title`` of a journey entered
    without a product), but reaching for what the sandbox forbids fails the template loudly."""

    def _refused(self) -> bool:
        return self._undefined_exception is SecurityError

    def __getattr__(self, name):
        if self._refused():
            self._fail_with_undefined_error()
        return super().__getattr__(name)

    def __str__(self) -> str:
        if self._refused():
            self._fail_with_undefined_error()
        return super().__str__()

    def __html__(self) -> str:
        return self.__str__()


# A template is typed by an editor and rendered by the web process (a test send) and by the workers
# (every email): whatever it does must stay small. Every value it builds, everything it writes and
# every loop it runs is counted against these, per rendering; going over fails the template (a
# ValueError, like any template error), never the process.
MAX_TEXT = 200_000  # characters of any one string or list a template builds
MAX_OUTPUT = 1_000_000  # characters one rendering writes in all (macros, loops and blocks included)
MAX_ITERATIONS = 20_000  # turns of all its loops together
MAX_WIDTH = 10_000  # a width, padding or count handed to a string method or filter
MAX_INT_BITS = 4_096  # the size of a whole number arithmetic may make

_WIDTH_FILTERS = {"center", "indent", "truncate", "wordwrap", "batch", "slice"}  # their arguments are widths and counts
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BUDGET: ContextVar[list[int] | None] = ContextVar("personalize_template_budget", default=None)


class TemplateTooCostly(SecurityError):
    """A template went over one of the limits above."""


def _too_costly(what: str) -> NoReturn:
    raise TemplateTooCostly(what)


def _spend(index: int, amount: int, what: str) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget[index] -= amount
    if budget[index] < 0:
        _too_costly(what)


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_TEXT:
        _too_costly(f"a value of more than {MAX_TEXT:,} characters or items")
    return value


def _check_width(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_WIDTH:
        _too_costly(f"a width or count above {MAX_WIDTH:,}")


def _check_format(pattern: str) -> None:
    """Refuse ``str.format`` / ``%`` patterns that pad to huge widths (``{:999999999}``, ``%0999999999d``,
    or a width taken from an argument)."""
    for _text, _name, spec, _conv in Formatter().parse(pattern):
        if spec and ("{" in spec or any(len(run) > 4 for run in re.findall(r"\d+", spec))):
            _too_costly("a format width above 9,999 or taken from an argument")


def _check_percent(pattern: str) -> None:
    for width, precision in _PERCENT_SPEC.findall(pattern):
        for part in (width, precision):
            if part == "*" or len(part) > 4:
                _too_costly("a format width above 9,999 or taken from an argument")


@pass_context
def _counted_filter(_context, items: Any):
    return _counted(items)


@pass_context
def _written_filter(_context, value: Any) -> Any:
    return _written(value)  # a filter of the context, so that Jinja never runs it ahead, on constant text


def _counted(items: Any):
    """The items of a loop, each turn counted against the rendering's budget."""
    for item in items:
        _spend(0, 1, f"loops of more than {MAX_ITERATIONS:,} turns")
        yield item


def _written(value: Any) -> Any:
    """What an output writes, counted against the rendering's budget."""
    if isinstance(value, str):
        _spend(1, len(value), f"more than {MAX_OUTPUT:,} characters of output")
    return value


def _guard_filter(name: str, f):
    """A built-in filter, with the widths and counts it is given checked first."""

    @functools.wraps(f)
    def guarded(*args, **kwargs):
        values = [*args, *kwargs.values()]
        if name == "format":
            pattern = next((a for a in args if isinstance(a, str)), "")
            _check_percent(pattern)
        elif name == "replace":
            texts = [a for a in args if isinstance(a, str)]
            if len(texts) >= 3:
                _check_replace(*texts[:3])
        elif name == "join" and args:
            parts = list(args[1]) if len(args) > 1 and not isinstance(args[1], str) else None
            if parts is not None:
                sep = next((a for a in args[2:] if isinstance(a, str)), kwargs.get("d", ""))
                _check_join(sep, parts)
                args = (args[0], parts, *args[2:])
        elif name == "indent":
            for v in values[1:]:
                if isinstance(v, str) and len(v) > MAX_WIDTH:
                    _too_costly(f"a width or count above {MAX_WIDTH:,}")
        if name in _WIDTH_FILTERS:
            for v in values[1:]:
                _check_width(v)
        return _sized(f(*args, **kwargs))

    return guarded


def _check_join(separator: str, parts: list) -> None:
    if len(parts) > MAX_TEXT or sum(len(str(p)) for p in parts) + len(separator) * len(parts) > MAX_TEXT:
        _too_costly(f"a value of more than {MAX_TEXT:,} characters or items")


def _check_replace(text: str, old: str, new: str) -> None:
    grows = max(0, len(new) - len(old))
    if grows and len(text) + grows * (text.count(old) if old else len(text) + 1) > MAX_TEXT:
        _too_costly(f"a value of more than {MAX_TEXT:,} characters or items")


class _Budgeted(NodeTransformer):
    """Rewrites a parsed template so that every loop's items pass :func:`_counted` and everything
    written passes :func:`_written` (static text inside a loop or a macro included)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "pz_counted", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [
            nodes.Filter(nodes.MarkSafe(nodes.Const(n.data)) if isinstance(n, nodes.TemplateData) else n, "pz_written", [], [], None, None,
                         lineno=n.lineno)
            for n in node.nodes
        ]
        return node


class _Generator(CodeGenerator):
    """Joins (``~``) are checked for size like every other value a template builds."""

    def visit_Concat(self, node: nodes.Concat, frame) -> None:
        self.write("environment.pz_sized(")
        super().visit_Concat(node, frame)
        self.write(")")


class _Environment(ImmutableSandboxedEnvironment):
    code_generator_class = _Generator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["pz_counted"] = _counted_filter
        self.filters["pz_written"] = _written_filter

    @staticmethod
    def pz_sized(value: Any) -> Any:
        return _sized(value)

    def _parse(self, source, name, filename):
        return _Budgeted().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        numbers = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if operator == "**" and numbers and abs(left) > 1 and right > 0 and abs(left).bit_length() * right > MAX_INT_BITS:
            _too_costly(f"a number of more than {MAX_INT_BITS:,} bits")
        if operator == "*":
            if numbers and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                _too_costly(f"a number of more than {MAX_INT_BITS:,} bits")
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_TEXT:
                    _too_costly(f"a value of more than {MAX_TEXT:,} characters or items")
        if operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _sized(left), _sized(right)
            if len(left) + len(right) > MAX_TEXT:
                _too_costly(f"a value of more than {MAX_TEXT:,} characters or items")
        if operator == "%" and isinstance(left, str):
            _check_percent(left)
        return _sized(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any):
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (the sandbox's own signature)
        if isinstance(__obj, LoopContext):  # loop(children) of a recursive loop: counted like any loop
            args = tuple(_counted(a) if i == 0 else a for i, a in enumerate(args))
        elif isinstance(getattr(__obj, "__self__", None), str):  # a string's own method
            for v in (*args, *kwargs.values()):
                _check_width(v)
            if __obj.__name__ == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
                _check_replace(__obj.__self__, args[0], args[1])
            if __obj.__name__ == "join" and args:
                parts = list(args[0])
                _check_join(__obj.__self__, parts)
                args = (parts, *args[1:])
        return _sized(super().call(__context, __obj, *args, **kwargs))


@functools.cache
def _environment(html: bool) -> _Environment:
    # a missing value renders empty, however deep (trigger.product.title for a journey entered without a product)
    return _Environment(autoescape=html, trim_blocks=True, lstrip_blocks=True, undefined=_Undefined)


@functools.lru_cache(maxsize=256)
def _compiled(source: str, html: bool):
    return _environment(html).from_string(source)


def check_template(source: str, path: str) -> str:
    """Refuse a template that does not compile, naming its line."""
    try:
        _environment(True).parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidInput(path, f"is not a valid template: {exc.message} (line {exc.lineno})") from None
    return source


def render(source: str, context: dict[str, Any], html: bool) -> str:
    """Render a template in the sandbox; a template error becomes :class:`ValueError` with its message.

    So does a template that costs too much (see ``MAX_TEXT`` and the limits beside it), recurses
    without end, or runs out of memory: the email step fails and says why; the process goes on."""
    budget = _BUDGET.set([MAX_ITERATIONS, MAX_OUTPUT])
    try:
        return "".join(_compiled(source, html).generate(**context))
    except TemplateTooCostly as exc:
        raise ValueError(f"the template does too much: {exc}") from None
    except TemplateError as exc:
        raise ValueError(f"the template failed: {exc}") from None
    except RecursionError:
        raise ValueError("the template failed: it calls itself without end") from None
    except MemoryError:
        raise ValueError("the template does too much: it ran out of memory") from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
        raise ValueError(f"the template failed: {type(exc).__name__}: {exc}") from None
    finally:
        _BUDGET.reset(budget)


class _Text(HTMLParser):
    """HTML to plain text for the text/plain part: paragraphs and links kept readable."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "table", "ul", "ol"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.href: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "head"):
            self.skip += 1
        if tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "a":
            self.href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        if tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith("http"):
                self.parts.append(f" <{href}>")
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip() + "\n"


#: what a link carries that proves who the person is: only ever sent to the shop's own hosts
IDENTITY_PARAMS = ("pz_token",)


def shop_hosts(base: str, origins: Any = ()) -> set[str]:
    """The host names of the shop: its address and the site's allowed origins."""
    return {h.lower() for h in (urlsplit(u).hostname for u in (base, *(origins or ())) if isinstance(u, str)) if h}


def tracked_link(base: str, url: str, params: dict[str, str], hosts: set[str] | None = None) -> str:
    """``url`` made absolute against the shop's ``base`` with ``params`` added to its query.

    A link to a host that is not the shop's (``hosts``, by default the host of ``base``) gets no
    :data:`IDENTITY_PARAMS`: a product address a feed points elsewhere must not hand a token
    that signs its reader in as the person to another site."""
    absolute = urljoin(base + "/", url) if base else url
    parts = urlsplit(absolute)
    if parts.scheme not in ("http", "https"):
        return ""
    if (parts.hostname or "").lower() not in (hosts if hosts is not None else shop_hosts(base)):
        params = {k: v for k, v in params.items() if k not in IDENTITY_PARAMS}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params and k not in IDENTITY_PARAMS]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, *params.items()]), parts.fragment))


def recommendations_block(items: list[dict[str, Any]]) -> Markup:
    """The default HTML of a contact's recommendations (a template may loop over them itself)."""
    if not items:
        return Markup("")
    cells = []
    for item in items:
        image = f'<img src="{escape(item["image"])}" alt="" width="160" style="display:block;max-width:160px;border:0">' if item.get("image") else ""
        price = f'<br><span style="color:#555">{escape(item["price_text"])}</span>' if item.get("price_text") else ""
        cells.append(
            f'<td style="padding:8px;vertical-align:top;width:170px"><a href="{escape(item["url"])}" style="color:#1a4fa0;text-decoration:none">'
            f'{image}<strong>{escape(item["title"])}</strong></a>{price}</td>'
        )
    rows = ["<tr>" + "".join(cells[i : i + 3]) + "</tr>" for i in range(0, len(cells), 3)]
    return Markup('<table role="presentation" cellspacing="0" cellpadding="0" class="recommendations">' + "".join(rows) + "</table>")


def open_time_block(cards: list[dict[str, str]], columns: int = 2) -> Markup:
    """The HTML of an open-time block: one linked picture per position (``image``, ``url``), drawn
    by the server when the email is opened (:mod:`personalize.email_block`)."""
    if not cards:
        return Markup("")
    cells = [
        f'<td style="padding:6px;vertical-align:top"><a href="{escape(c["url"])}">'
        f'<img src="{escape(c["image"])}" alt="Recommended for you" width="224" style="display:block;max-width:100%;border:0"></a></td>'
        for c in cards
    ]
    rows = ["<tr>" + "".join(cells[i : i + columns]) + "</tr>" for i in range(0, len(cells), columns)]
    return Markup('<table role="presentation" cellspacing="0" cellpadding="0" class="recommendations">' + "".join(rows) + "</table>")


def footer_html(unsubscribe_url: str, postal_address: str) -> str:
    address = f"<br>{escape(postal_address)}" if postal_address else ""
    return (
        '<p style="color:#777;font-size:12px;margin-top:24px">You receive this because you are a customer of ours. '
        f'<a href="{escape(unsubscribe_url)}">Unsubscribe</a>{address}</p>'
    )


# ---------------------------------------------------------------- messages


@dataclass
class Rendered:
    subject: str
    html: str
    text: str
    rec_id: str = ""
    items: list[str] = field(default_factory=list)


def message_id(key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "personalize.invalid"
    return f"<{key}@{domain}>"


def build_message(settings: JourneySettings, to: str, rendered: Rendered, key: str, unsubscribe_url: str,
                  at: datetime | None = None, headers: Mapping[str, str] | None = None) -> EmailMessage:
    """The MIME message: text and HTML alternatives, the one-click unsubscribe headers (RFC 8058),
    and a Message-ID derived from the idempotency key."""
    msg = EmailMessage()
    msg["From"] = formataddr((settings.from_name, settings.from_email)) if settings.from_name else settings.from_email
    msg["To"] = to
    msg["Subject"] = rendered.subject.replace("\r", " ").replace("\n", " ").strip()[:300]
    msg["Date"] = format_datetime((at or utcnow()).replace(tzinfo=UTC))
    msg["Message-ID"] = message_id(key, settings.from_email)
    if settings.reply_to:
        msg["Reply-To"] = settings.reply_to
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Personalize-Key"] = key
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


class AddressRefused(OSError):
    """The SMTP host resolves to an address the server never connects to (loopback, private,
    link-local, cloud metadata) and the operator does not trust it in ``OUTBOUND_ALLOWED_HOSTS``."""


class _Guarded(smtplib.SMTP):
    """An SMTP connection that resolves the host itself, checks every address against the
    outbound policy and connects to a checked address (no second lookup to rebind)."""

    policy: Any = None

    def _get_socket(self, host, port, timeout):
        import socket

        from ..sync.outbound import OutboundRefused

        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"{host}: the SMTP host name does not resolve ({exc})") from None
        try:
            self.policy.check_addresses(host, port, [sockaddr[0] for *_rest, sockaddr in found])
        except OutboundRefused as exc:
            raise AddressRefused(f"SMTP host {exc}") from None
        last: OSError | None = None
        for family, kind, proto, _name, sockaddr in found:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
        raise last or OSError(f"{host}: no address to connect to")


class _GuardedSSL(smtplib.SMTP_SSL, _Guarded):
    """Implicit TLS over a guarded connection (SMTP_SSL wraps what :class:`_Guarded` opened)."""


def smtp_policy(config: Mapping[str, Any] | None):
    """The outbound address policy for mail: public hosts, plus hosts the operator trusts."""
    from ..sync.outbound import SETTING, OutboundPolicy, parse_allowed_hosts

    return OutboundPolicy(provider="SMTP", trusted=parse_allowed_hosts((config or {}).get(SETTING)))


def _smtp_connection(settings: JourneySettings, password: str, timeout: float = SMTP_TIMEOUT, policy: Any = None) -> smtplib.SMTP:
    """Open and authenticate the site's SMTP connection: the one place mail leaves the server.

    ``smtp_security``: ``ssl`` (implicit TLS, port 465), ``starttls`` (port 587, refused when
    the server does not offer it) or ``none`` (a relay on a trusted network). Certificates
    are verified. The host must resolve to public addresses only, unless the operator lists
    it in ``OUTBOUND_ALLOWED_HOSTS`` (a relay on the local network, for example): otherwise
    :class:`AddressRefused` is raised before anything is sent.
    """
    host, port = settings.smtp_host, int(settings.smtp_port)
    context = ssl.create_default_context()
    policy = policy if policy is not None else smtp_policy(None)
    connection: smtplib.SMTP
    if settings.smtp_security == "ssl":
        ssl_class = type("GuardedSSL", (_GuardedSSL,), {"policy": policy})
        connection = ssl_class(host, port, timeout=timeout, context=context)
    else:
        plain = type("Guarded", (_Guarded,), {"policy": policy})
        connection = plain(host, port, timeout=timeout)
        if settings.smtp_security == "starttls":
            connection.ehlo()
            if not connection.has_extn("starttls"):
                connection.close()
                raise smtplib.SMTPNotSupportedError(f"{host} does not offer STARTTLS; choose SSL or a relay without encryption")
            connection.starttls(context=context)
    connection.ehlo()
    if settings.smtp_username:
        connection.login(settings.smtp_username, password)
    return connection


class Mailer:
    """One SMTP connection for a batch of messages, opened on first use and re-opened once if the
    server dropped it. ``send`` raises :class:`smtplib.SMTPException` or :class:`OSError`."""

    def __init__(self, settings: JourneySettings, password: str, config: Mapping[str, Any] | None = None):
        self.settings, self.password = settings, password
        self.policy = smtp_policy(config)
        self.connection: smtplib.SMTP | None = None
        self.sent = 0

    def send(self, msg: EmailMessage, to: str) -> None:
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = _smtp_connection(self.settings, self.password, policy=self.policy)
            try:
                self.connection.send_message(msg, from_addr=self.settings.from_email, to_addrs=[to])
                self.sent += 1
                return
            except smtplib.SMTPServerDisconnected:
                self.connection = None
                if attempt == 2:
                    raise

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.quit()
            except (smtplib.SMTPException, OSError):
                self.connection.close()
            self.connection = None


def permanent(exc: BaseException) -> bool:
    """Whether an SMTP failure will not go away by trying again (a refused recipient, bad credentials)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in exc.recipients.values())
    if isinstance(exc, AddressRefused | smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError | ssl.SSLCertVerificationError):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False
