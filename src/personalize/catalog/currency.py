"""Each site's currency: what the widget shows a price in when the product does not say.

A site's currency is set by an editor (the site's admin page) or taken from its own data,
in this order: the currency most of its orders were paid in, else the currency of the
country most of its orders come from (a small table, :data:`COUNTRY_CURRENCY`: a UK shop's
Online Retail export has no currency column, but its orders say "United Kingdom"), else the
currency most of its products carry. It is never a silent default: a site whose data says
nothing has none, the widget then shows plain numbers, and the site page says so.

The value lives in the site's ``settings`` (``currency`` and ``currency_source``, the
latter in the owner's words: "set on the site page", "most orders come from United Kingdom").
"""

from __future__ import annotations

import re

from sqlalchemy import case, func, select

from ..db import db
from ..models import Order, Product, Site

CODE = re.compile(r"^[A-Z]{3}$")

#: country (as order exports spell it, and ISO 3166 alpha-2 codes) → ISO 4217 currency
COUNTRY_CURRENCY: dict[str, str] = {
    "United Kingdom": "GBP", "UK": "GBP", "GB": "GBP", "Great Britain": "GBP", "Channel Islands": "GBP",
    "United States": "USD", "USA": "USD", "US": "USD", "Canada": "CAD", "CA": "CAD",
    "Australia": "AUD", "AU": "AUD", "New Zealand": "NZD", "NZ": "NZD",
    "Switzerland": "CHF", "CH": "CHF", "Norway": "NOK", "NO": "NOK", "Sweden": "SEK", "SE": "SEK",
    "Denmark": "DKK", "DK": "DKK", "Iceland": "ISK", "IS": "ISK", "Poland": "PLN", "PL": "PLN",
    "Czech Republic": "CZK", "Czechia": "CZK", "CZ": "CZK", "Hungary": "HUF", "HU": "HUF",
    "Japan": "JPY", "JP": "JPY", "Singapore": "SGD", "SG": "SGD", "Israel": "ILS", "IL": "ILS",
    "Brazil": "BRL", "BR": "BRL", "South Africa": "ZAR", "RSA": "ZAR", "ZA": "ZAR",
    "United Arab Emirates": "AED", "AE": "AED", "Saudi Arabia": "SAR", "SA": "SAR",
    "Bahrain": "BHD", "BH": "BHD", "Lebanon": "LBP", "LB": "LBP", "India": "INR", "IN": "INR",
    "China": "CNY", "CN": "CNY", "Hong Kong": "HKD", "HK": "HKD", "Mexico": "MXN", "MX": "MXN",
    # the euro area
    "Germany": "EUR", "DE": "EUR", "France": "EUR", "FR": "EUR", "EIRE": "EUR", "Ireland": "EUR", "IE": "EUR",
    "Spain": "EUR", "ES": "EUR", "Netherlands": "EUR", "NL": "EUR", "Belgium": "EUR", "BE": "EUR",
    "Portugal": "EUR", "PT": "EUR", "Italy": "EUR", "IT": "EUR", "Finland": "EUR", "FI": "EUR",
    "Austria": "EUR", "AT": "EUR", "Greece": "EUR", "GR": "EUR", "Cyprus": "EUR", "CY": "EUR",
    "Malta": "EUR", "MT": "EUR", "Lithuania": "EUR", "LT": "EUR", "Latvia": "EUR", "LV": "EUR",
    "Estonia": "EUR", "EE": "EUR", "Slovakia": "EUR", "SK": "EUR", "Slovenia": "EUR", "SI": "EUR",
    "Luxembourg": "EUR", "LU": "EUR", "Croatia": "EUR", "HR": "EUR", "European Community": "EUR",
}


class CurrencyError(ValueError):
    """A currency code that is not three letters (ISO 4217, such as GBP)."""


def clean_currency(code: str) -> str:
    """``gbp `` → ``GBP``; raise :class:`CurrencyError` for anything but three letters."""
    text = (code or "").strip().upper()
    if not CODE.match(text):
        raise CurrencyError(f"a currency is a three-letter ISO 4217 code such as GBP, EUR or USD, got {code!r}"[:160])
    return text


def site_currency(site: Site) -> str:
    """The site's currency code, or ``""`` when none is known."""
    value = (site.settings or {}).get("currency") or ""
    return value if isinstance(value, str) and CODE.match(value) else ""


def currency_source(site: Site) -> str:
    return str((site.settings or {}).get("currency_source") or "") if site_currency(site) else ""


def set_site_currency(site: Site, code: str, source: str = "set on the site page", commit: bool = True) -> str:
    """Set the site's currency (validated); ``""`` clears it. Returns the stored code."""
    settings = dict(site.settings or {})
    if code:
        settings["currency"], settings["currency_source"] = clean_currency(code), source
    else:
        settings.pop("currency", None)
        settings.pop("currency_source", None)
    site.settings = settings
    if commit:
        db.session.commit()
    return settings.get("currency", "")


def _most_common(column, *where) -> tuple[str, int] | None:
    row = db.session.execute(
        select(column, func.count()).where(*where, column != "").group_by(column).order_by(func.count().desc(), column).limit(1)
    ).first()
    return (row[0], int(row[1])) if row else None


def infer_currency(site_id: int) -> tuple[str, str] | None:
    """What the site's own data says its currency is: ``(code, why)``, or ``None``."""
    found = _most_common(Order.currency, Order.site_id == site_id)
    if found and CODE.match(found[0].upper()):
        return found[0].upper(), "the currency of most orders"
    country = _most_common(Order.country, Order.site_id == site_id)
    if country:
        code = COUNTRY_CURRENCY.get(country[0].strip()) or COUNTRY_CURRENCY.get(country[0].strip().upper())
        if code:
            return code, f"most orders come from {country[0].strip()}"
    found = _most_common(Product.currency, Product.site_id == site_id)
    if found and CODE.match(found[0].upper()):
        return found[0].upper(), "the currency of most products"
    return None


def ensure_site_currency(site: Site) -> tuple[str, str, bool]:
    """Give a site without a currency the one its data names. ``(code, source, newly set)``;
    ``("", "", False)`` when neither the site nor its data has one. A currency an editor set is kept."""
    current = site_currency(site)
    if current:
        return current, currency_source(site), False
    found = infer_currency(site.id)
    if found is None:
        return "", "", False
    code, why = found
    set_site_currency(site, code, why)
    return code, why, True


def catalog_gaps(site_id: int) -> dict[str, int]:
    """How many of the site's products the widget cannot show well: no link (left out), no image."""
    total, no_url, no_image = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Product.url == "", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Product.image == "", 1), else_=0)), 0),
        ).where(Product.site_id == site_id)
    ).one()
    return {"products": int(total or 0), "no_url": int(no_url or 0), "no_image": int(no_image or 0)}
