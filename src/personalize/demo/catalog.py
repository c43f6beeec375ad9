"""The demo shop's catalogue: a home & outdoor goods shop with ten departments.

Everything is generated from small vocabularies with a seeded random generator,
so the same seed always gives the same 240 products (ids, titles, prices, stock).
Each product carries its ``kind`` (e.g. ``espresso-machine``) in ``attributes``;
the traffic generator uses kinds to build realistic co-purchase patterns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from personalize.records import ProductRecord

CURRENCY = "EUR"
FIRST_ID = 1001
PRODUCTS_PER_KIND = 4
OUT_OF_STOCK_SHARE = 0.04


@dataclass(frozen=True)
class Kind:
    """A type of product within a category: its nouns, price band and a selling line."""

    slug: str
    nouns: tuple[str, ...]
    price_min: float
    price_max: float
    pitch: str


@dataclass(frozen=True)
class Category:
    slug: str
    label: str
    brands: tuple[str, ...]
    adjectives: tuple[str, ...]
    kinds: tuple[Kind, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "coffee-tea",
        "Coffee & Tea",
        ("Bravura", "Crema Nord", "Kettleby", "Monte Alba", "Tōgen"),
        ("Classic", "Compact", "Barista", "Heritage", "Everyday", "Smooth"),
        (
            Kind(
                "espresso-machine",
                ("Espresso Machine", "Dual Boiler Espresso Machine", "Lever Espresso Maker"),
                189,
                899,
                "Pulls a rich, even shot at a stable 9 bar and steams milk while you wait.",
            ),
            Kind(
                "grinder",
                ("Burr Grinder", "Hand Grinder", "Flat Burr Grinder"),
                39,
                249,
                "Steel burrs with 40 grind steps, from espresso-fine to French press.",
            ),
            Kind(
                "coffee-beans",
                ("Espresso Beans 1 kg", "Single Origin Beans 250 g", "House Blend Beans 500 g"),
                8.9,
                29.9,
                "Roasted in small batches in Hamburg, notes of cocoa and red berries.",
            ),
            Kind(
                "milk-frother",
                ("Milk Frother", "Frothing Pitcher", "Milk Jug 600 ml"),
                14.9,
                89,
                "Silky microfoam for flat whites and latte art at home.",
            ),
            Kind(
                "tea",
                ("Sencha Green Tea 100 g", "Earl Grey Tea 100 g", "Rooibos Vanilla Tea 100 g"),
                6.5,
                19.9,
                "Whole leaves in a resealable tin that keeps the aroma in.",
            ),
            Kind(
                "teapot",
                ("Teapot with Infuser", "Glass Teapot", "Cast Iron Teapot"),
                24,
                79,
                "Brews four cups; the fine mesh infuser lifts out when the tea is ready.",
            ),
        ),
    ),
    Category(
        "kitchen",
        "Kitchen",
        ("Hagen & Sohn", "Ferro", "Olivia", "Kuro", "Marlow"),
        ("Professional", "Essential", "Forged", "Nordic", "Signature", "Rustic"),
        (
            Kind(
                "chef-knife",
                ("Chef's Knife 20 cm", "Santoku Knife", "Paring Knife Set"),
                29,
                189,
                "Hand-sharpened high-carbon steel with a balanced olive-wood handle.",
            ),
            Kind(
                "cutting-board",
                ("Walnut Cutting Board", "End Grain Chopping Block", "Bamboo Board Set"),
                19,
                89,
                "Gentle on blades, with a juice groove and non-slip feet.",
            ),
            Kind(
                "knife-sharpener",
                ("Whetstone 1000/6000", "Pull-Through Sharpener", "Honing Rod"),
                14,
                69,
                "Brings a dull edge back to razor sharp in a few strokes.",
            ),
            Kind(
                "skillet",
                ("Cast Iron Skillet 28 cm", "Carbon Steel Pan", "Stainless Frying Pan"),
                29,
                149,
                "Pre-seasoned and oven safe, it gets better with every use.",
            ),
            Kind(
                "dutch-oven",
                ("Dutch Oven 5 L", "Enamelled Casserole", "Braiser 3.5 L"),
                59,
                299,
                "Heavy enamelled cast iron for slow braises and crusty bread.",
            ),
            Kind(
                "storage",
                ("Glass Storage Jars (set of 3)", "Spice Rack", "Bread Bin"),
                12,
                59,
                "Keeps the pantry tidy and ingredients fresh for longer.",
            ),
        ),
    ),
    Category(
        "running",
        "Running",
        ("Stride", "Kestrel", "Velox", "Nordpace", "Fennec"),
        ("Lightweight", "Trail", "Tempo", "Cushioned", "Race", "All-Weather"),
        (
            Kind(
                "running-shoes",
                ("Running Shoes", "Trail Running Shoes", "Road Racer Shoes"),
                79,
                189,
                "A responsive foam midsole and a breathable knit upper for long miles.",
            ),
            Kind(
                "running-socks",
                ("Running Socks (3 pairs)", "Ankle Socks", "Compression Socks"),
                9.9,
                24.9,
                "Seamless toes and cushioned heels: no blisters after a half marathon.",
            ),
            Kind(
                "energy-gels",
                ("Energy Gel 12-Pack", "Electrolyte Tabs", "Energy Chews"),
                12,
                29,
                "Fast carbohydrates and sodium, easy on the stomach mid-race.",
            ),
            Kind(
                "running-jacket",
                ("Running Jacket", "Wind Shell", "Reflective Vest"),
                29,
                149,
                "Packs into its own pocket and keeps the wind and drizzle out.",
            ),
            Kind(
                "gps-watch",
                ("GPS Running Watch", "Heart Rate Strap", "Sports Watch"),
                49,
                449,
                "Tracks pace, distance and heart rate, with a battery that lasts a week.",
            ),
            Kind(
                "hydration",
                ("Hydration Vest 5 L", "Running Belt", "Soft Flask 500 ml"),
                14,
                119,
                "Bounce-free fit that carries water, phone and keys.",
            ),
        ),
    ),
    Category(
        "hiking",
        "Hiking",
        ("Alpenfeld", "Ridgeway", "Summit & Co", "Wildmark", "Fjellby"),
        ("Waterproof", "Alpine", "Ultralight", "Rugged", "Expedition", "Trekking"),
        (
            Kind(
                "hiking-boots",
                ("Hiking Boots", "Mid Trekking Boots", "Approach Shoes"),
                99,
                259,
                "Waterproof membrane, grippy lugged sole and ankle support for rough trails.",
            ),
            Kind(
                "hiking-socks",
                ("Merino Hiking Socks", "Trekking Socks (2 pairs)", "Liner Socks"),
                12,
                29,
                "Merino wool that stays warm when wet and does not smell after day three.",
            ),
            Kind(
                "backpack",
                ("Daypack 25 L", "Trekking Backpack 45 L", "Hip Pack"),
                39,
                229,
                "Ventilated back panel, rain cover and an adjustable hip belt.",
            ),
            Kind(
                "trekking-poles",
                ("Trekking Poles (pair)", "Carbon Walking Poles", "Folding Poles"),
                29,
                139,
                "Light aluminium poles with quick locks and cork grips.",
            ),
            Kind(
                "water-filter",
                ("Water Filter Bottle", "Squeeze Filter", "Purifier Tablets"),
                9.9,
                89,
                "Drink straight from streams: removes 99.9% of bacteria.",
            ),
            Kind(
                "headlamp",
                ("Headlamp 400 lm", "Rechargeable Headlamp", "Camp Lantern"),
                19,
                79,
                "USB-C rechargeable, red night mode and a lock against switching on in your pack.",
            ),
        ),
    ),
    Category(
        "yoga",
        "Yoga",
        ("Lotusleaf", "Prana Loop", "Sattva", "Ommo", "Stillwater"),
        ("Natural", "Balance", "Grounded", "Studio", "Travel", "Eco"),
        (
            Kind(
                "yoga-mat",
                ("Yoga Mat 4 mm", "Cork Yoga Mat", "Travel Yoga Mat"),
                24,
                119,
                "Natural rubber with a grippy top layer, even in a hot class.",
            ),
            Kind(
                "yoga-block",
                ("Yoga Block", "Cork Block (pair)", "Foam Block"),
                9.9,
                29,
                "Firm support for deeper stretches and balanced poses.",
            ),
            Kind(
                "yoga-strap",
                ("Yoga Strap", "Stretch Band Set", "Mat Carrying Strap"),
                7.9,
                19.9,
                "Cotton strap with a metal D-ring that holds without slipping.",
            ),
            Kind(
                "meditation-cushion",
                ("Meditation Cushion", "Zafu Cushion", "Bolster"),
                29,
                89,
                "Buckwheat filling that shapes to you; removable, washable cover.",
            ),
            Kind(
                "yoga-wear",
                ("High-Waist Leggings", "Yoga Top", "Wrap Cardigan"),
                29,
                89,
                "Soft, stretchy and opaque, made from recycled fibres.",
            ),
            Kind(
                "mat-care",
                ("Mat Cleaning Spray", "Mat Towel", "Mat Bag"),
                9.9,
                39,
                "Keeps your mat fresh and grippy, class after class.",
            ),
        ),
    ),
    Category(
        "kids",
        "Kids & Baby",
        ("Little Oak", "Pebble", "Bambini", "Wunderkind", "Moonbeam"),
        ("Cosy", "Playful", "Wooden", "First", "Happy", "Tiny"),
        (
            Kind(
                "stroller",
                ("City Stroller", "Jogging Stroller", "Compact Travel Buggy"),
                199,
                899,
                "One-hand fold, all-terrain wheels and a basket for the weekly shop.",
            ),
            Kind(
                "changing-bag",
                ("Changing Bag", "Stroller Organiser", "Changing Mat"),
                19,
                129,
                "Wipe-clean lining, insulated bottle pockets and stroller clips.",
            ),
            Kind(
                "baby-carrier",
                ("Baby Carrier", "Wrap Sling", "Hip Seat Carrier"),
                49,
                179,
                "Ergonomic from newborn to toddler, with a breathable mesh panel.",
            ),
            Kind(
                "wooden-toy",
                ("Wooden Stacking Rainbow", "Building Blocks (50 pcs)", "Pull-Along Duck"),
                12,
                59,
                "Sustainably sourced beech, painted with water-based, non-toxic colours.",
            ),
            Kind(
                "picture-book",
                ("Picture Book: The Sleepy Fox", "Board Book Set", "Touch & Feel Book"),
                7.9,
                24.9,
                "A bedtime favourite with bright pictures and sturdy pages.",
            ),
            Kind(
                "night-light",
                ("Night Light", "Sleep Sound Machine", "Star Projector"),
                14,
                49,
                "Warm, dimmable glow and a timer that switches off by itself.",
            ),
        ),
    ),
    Category(
        "garden",
        "Garden",
        ("Greenthumb", "Hortus", "Fieldcraft", "Blumenwerk", "Sowwell"),
        ("Heavy-Duty", "Classic", "Kink-Free", "Compact", "Organic", "Pro"),
        (
            Kind(
                "garden-hose",
                ("Garden Hose 25 m", "Expandable Hose 15 m", "Hose Reel"),
                24,
                119,
                "Kink-free, UV-stable and light enough to drag round the whole garden.",
            ),
            Kind(
                "hose-nozzle",
                ("Spray Nozzle", "Watering Wand", "Hose Connector Set"),
                8.9,
                34,
                "Seven spray patterns from a gentle shower to a jet for the patio.",
            ),
            Kind(
                "pruning-shears",
                ("Bypass Pruning Shears", "Hedge Shears", "Loppers"),
                14,
                79,
                "Hardened steel blades for clean cuts that help plants heal.",
            ),
            Kind(
                "gardening-gloves",
                ("Gardening Gloves", "Rose Gloves", "Nitrile Work Gloves"),
                7.9,
                29,
                "Thorn-proof palms and breathable backs.",
            ),
            Kind(
                "seeds",
                ("Tomato Seeds", "Wildflower Seed Mix", "Herb Seed Collection"),
                2.9,
                12.9,
                "Organic, open-pollinated seeds with a high germination rate.",
            ),
            Kind(
                "planter",
                ("Raised Bed 120 cm", "Terracotta Planter", "Balcony Planter"),
                19,
                199,
                "Frost-proof and deep enough for vegetables and herbs.",
            ),
        ),
    ),
    Category(
        "office",
        "Home Office",
        ("Deskwise", "Linea", "Ergon Haus", "Paperbark", "Quillon"),
        ("Ergonomic", "Minimal", "Adjustable", "Studio", "Executive", "Slim"),
        (
            Kind(
                "office-chair",
                ("Office Chair", "Mesh Task Chair", "Kneeling Chair"),
                149,
                599,
                "Adjustable lumbar support, 4D armrests and a breathable mesh back.",
            ),
            Kind(
                "standing-desk",
                ("Standing Desk 140 cm", "Desk Converter", "Electric Sit-Stand Desk"),
                199,
                899,
                "Quiet dual motors and four memory heights.",
            ),
            Kind(
                "monitor-arm",
                ("Monitor Arm", "Dual Monitor Arm", "Laptop Stand"),
                29,
                179,
                "Gas-spring arm that frees your desk and puts the screen at eye level.",
            ),
            Kind(
                "desk-lamp",
                ("LED Desk Lamp", "Architect Lamp", "Light Bar"),
                29,
                129,
                "Flicker-free light with adjustable warmth for long evenings.",
            ),
            Kind(
                "notebook",
                ("Dotted Notebook A5", "Weekly Planner", "Fountain Pen"),
                6.9,
                39,
                "Thick, fountain-pen friendly paper that lies flat.",
            ),
            Kind(
                "keyboard-mouse",
                ("Wireless Keyboard", "Ergonomic Mouse", "Desk Mat"),
                19,
                149,
                "Quiet keys, multi-device pairing and months of battery.",
            ),
        ),
    ),
    Category(
        "pets",
        "Pets",
        ("Pawford", "Whisker & Co", "Barkley", "Furrytale", "Tailwind"),
        ("Cosy", "Durable", "Orthopaedic", "Natural", "Playful", "Premium"),
        (
            Kind(
                "dog-food",
                ("Grain-Free Dog Food 12 kg", "Puppy Food 3 kg", "Dog Treats 500 g"),
                6.9,
                79,
                "Fresh meat as the first ingredient, no artificial additives.",
            ),
            Kind(
                "dog-bed",
                ("Dog Bed", "Orthopaedic Dog Bed", "Travel Dog Mat"),
                29,
                149,
                "Memory-foam base and a washable, chew-resistant cover.",
            ),
            Kind(
                "leash",
                ("Dog Leash", "Harness", "Retractable Leash 5 m"),
                12,
                49,
                "Padded handle and reflective stitching for evening walks.",
            ),
            Kind(
                "cat-tree",
                ("Cat Tree", "Scratching Post", "Wall Climbing Shelf"),
                24,
                229,
                "Sisal posts, a hammock and a lookout at the top.",
            ),
            Kind(
                "cat-litter",
                ("Clumping Cat Litter 10 L", "Litter Box", "Litter Mat"),
                9.9,
                59,
                "Low-dust, odour-locking and easy to scoop.",
            ),
            Kind(
                "cat-toy",
                ("Feather Wand", "Catnip Mice (3 pcs)", "Puzzle Feeder"),
                4.9,
                24.9,
                "Keeps indoor cats busy and happy.",
            ),
        ),
    ),
    Category(
        "audio",
        "Audio",
        ("Sonaro", "Klangwerk", "Aurelia", "Basswood", "Echo Park"),
        ("Wireless", "Studio", "Noise-Cancelling", "Portable", "Hi-Fi", "Retro"),
        (
            Kind(
                "headphones",
                ("Over-Ear Headphones", "On-Ear Headphones", "Studio Monitor Headphones"),
                59,
                399,
                "Deep, detailed sound, soft memory-foam cushions and 30 hours of battery.",
            ),
            Kind(
                "headphone-stand",
                ("Headphone Stand", "Headphone Case", "Replacement Ear Pads"),
                14,
                49,
                "Keeps your headphones safe and your desk tidy.",
            ),
            Kind(
                "earbuds",
                ("True Wireless Earbuds", "Sport Earbuds", "In-Ear Monitors"),
                39,
                249,
                "Secure fit, clear calls and a pocketable charging case.",
            ),
            Kind(
                "speaker",
                ("Bluetooth Speaker", "Waterproof Speaker", "Bookshelf Speakers (pair)"),
                29,
                349,
                "Room-filling sound that pairs in a second.",
            ),
            Kind(
                "turntable",
                ("Turntable", "Belt-Drive Record Player", "Phono Preamp"),
                79,
                599,
                "Belt drive, a pre-mounted cartridge and a built-in preamp.",
            ),
            Kind(
                "record-care",
                ("Record Cleaning Kit", "Anti-Static Brush", "Inner Sleeves (50 pcs)"),
                9.9,
                39,
                "Keeps your vinyl clean, quiet and crackle-free.",
            ),
        ),
    ),
)

CATEGORY_BY_SLUG: dict[str, Category] = {c.slug: c for c in CATEGORIES}
CATEGORY_BY_LABEL: dict[str, Category] = {c.label: c for c in CATEGORIES}

# Kinds bought together: buying the first makes the others likely in the same order.
# The traffic generator plays these out, so a co-occurrence model has something to find.
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "espresso-machine": ("coffee-beans", "milk-frother"),
    "grinder": ("coffee-beans",),
    "teapot": ("tea",),
    "chef-knife": ("cutting-board", "knife-sharpener"),
    "skillet": ("storage",),
    "running-shoes": ("running-socks", "energy-gels"),
    "gps-watch": ("hydration",),
    "hiking-boots": ("hiking-socks",),
    "backpack": ("water-filter", "headlamp"),
    "yoga-mat": ("yoga-block", "yoga-strap"),
    "stroller": ("changing-bag",),
    "garden-hose": ("hose-nozzle",),
    "pruning-shears": ("gardening-gloves",),
    "standing-desk": ("monitor-arm",),
    "office-chair": ("desk-lamp",),
    "cat-tree": ("cat-toy",),
    "dog-bed": ("dog-food",),
    "turntable": ("record-care",),
    "headphones": ("headphone-stand",),
}


def category_slug(label: str) -> str:
    """The URL slug of a category label (``"Coffee & Tea"`` → ``"coffee-tea"``); '' if unknown."""
    category = CATEGORY_BY_LABEL.get(label)
    return category.slug if category else ""


def _price(rng: random.Random, kind: Kind) -> float:
    # Prices cluster towards the cheap end of a band, like a real assortment,
    # and end in .90/.95/.99 (or a round .00 for expensive things).
    raw = kind.price_min + (kind.price_max - kind.price_min) * rng.random() ** 1.6
    if raw >= 100:
        return float(
            int(raw / 10) * 10 + rng.choice((9, 9, 9, 0)) - (0.01 if rng.random() < 0.5 else 0)
        )
    return int(raw) + rng.choice((0.9, 0.95, 0.99, 0.5))


def demo_products(seed: int = 7) -> list[ProductRecord]:
    """The demo catalogue: 240 products in 10 categories, identical for the same seed.

    Ids run ``P1001``…``P1240``; about 4% of the products are out of stock.
    """
    rng = random.Random(seed)
    drafts: list[dict] = []
    seen_titles: set[str] = set()
    for category in CATEGORIES:
        for kind in category.kinds:
            for i in range(PRODUCTS_PER_KIND):
                # Every kind shows each of its nouns at least once, then repeats one.
                noun = kind.nouns[i % len(kind.nouns)]
                for _ in range(50):
                    brand = rng.choice(category.brands)
                    adjective = rng.choice(category.adjectives)
                    title = f"{brand} {adjective} {noun}"
                    # "Wireless True Wireless Earbuds" reads like a typo: skip such pairs.
                    if title not in seen_titles and adjective.lower() not in noun.lower():
                        break
                seen_titles.add(title)
                drafts.append(
                    {
                        "title": title,
                        "category": category,
                        "kind": kind,
                        "brand": brand,
                        "adjective": adjective,
                        "noun": noun,
                        "price": round(_price(rng, kind), 2),
                    }
                )

    out_of_stock = set(rng.sample(range(len(drafts)), round(len(drafts) * OUT_OF_STOCK_SHARE)))
    products = []
    for index, draft in enumerate(drafts):
        pid = f"P{FIRST_ID + index}"
        category, kind = draft["category"], draft["kind"]
        description = (
            f"{draft['adjective']} {draft['noun']} by {draft['brand']}. {kind.pitch} "
            f"Free returns within 30 days and a {rng.choice((2, 2, 3, 5))}-year warranty."
        )
        products.append(
            ProductRecord(
                id=pid,
                title=draft["title"],
                url=f"/product/{pid}",
                image=f"/demo/img/{pid}.svg",
                price=draft["price"],
                currency=CURRENCY,
                category=category.label,
                description=description,
                in_stock=index not in out_of_stock,
                attributes={
                    "brand": draft["brand"],
                    "kind": kind.slug,
                    "short_name": draft["noun"],
                    "category_slug": category.slug,
                },
            )
        )
    return products
