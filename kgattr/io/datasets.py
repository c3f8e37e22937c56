"""Synthetic catalogs with realistic structure, for the demo, the docs and the tests (``SAMPLES`` by kind).

fashion: closed vocabularies whose values depend on each other the way they do in real catalogs: age group
follows gender, sleeve length follows the article, season and year follow the (brand, article) collection,
and the title states brand, gender and colour while the description sometimes states fabric or material.

electronics: technical listings whose values the text states in varied forms (units, abbreviations,
typos) or not at all, with a model number per product (an open vocabulary).
"""
from __future__ import annotations

import random
import re

from .catalog import Catalog, Product

ARTICLES = {
    ("Apparel", "Topwear", "Shirts"): {"Fabric": ["Cotton", "Linen", "Polyester"], "Sleeve Length": ["Long Sleeves", "Short Sleeves"], "Fit": ["Slim Fit", "Regular Fit"]},
    ("Apparel", "Topwear", "Tshirts"): {"Fabric": ["Cotton", "Polyester"], "Sleeve Length": ["Short Sleeves", "Sleeveless"], "Neck": ["Round Neck", "Polo Collar", "V-Neck"]},
    ("Apparel", "Bottomwear", "Jeans"): {"Fabric": ["Denim"], "Fit": ["Slim Fit", "Skinny Fit", "Regular Fit"]},
    ("Footwear", "Shoes", "Casual Shoes"): {"Material": ["Leather", "Canvas", "Synthetic"], "Fastening": ["Lace-Ups", "Slip-On"]},
    ("Footwear", "Shoes", "Sports Shoes"): {"Material": ["Mesh", "Synthetic"], "Fastening": ["Lace-Ups", "Velcro"]},
    ("Accessories", "Watches", "Watches"): {"Dial Shape": ["Round", "Square"], "Strap Material": ["Leather", "Metal", "Silicone"]},
}
BRANDS = ["Roadster", "Puma", "Nike", "Fastrack", "Wrangler", "Titan", "Allen Solly", "Adidas"]
GENDERS = {"Men": "Adults-Men", "Women": "Adults-Women", "Boys": "Kids-Boys", "Unisex": "Adults-Unisex"}
COLOURS = ["Black", "White", "Navy Blue", "Grey", "Red", "Blue", "Brown", "Green"]
USAGE = {"Sports Shoes": "Sports", "Watches": "Casual", "Shirts": "Formal"}
NOUN = {"Shirts": "Shirt", "Tshirts": "T-shirt", "Jeans": "Jeans", "Casual Shoes": "Casual Shoes",
        "Sports Shoes": "Sports Shoes", "Watches": "Watch"}


def make_catalog(num_products: int = 400, *, missing_rate: float = 0.2, seed: int = 0) -> Catalog:
    """A catalog of ``num_products`` products; ``missing_rate`` of the optional cells are left empty."""
    rng = random.Random(seed)
    collections = {}
    products = []
    for i in range(num_products):
        category = rng.choice(sorted(ARTICLES))
        brand = rng.choice(BRANDS)
        key = (brand, category)
        if key not in collections:
            collections[key] = (rng.choice(["Summer", "Fall", "Winter", "Spring"]), rng.choice(["2011", "2012", "2016"]))
        season, year = collections[key]
        gender = rng.choice(sorted(GENDERS))
        colour = rng.choice(COLOURS)
        attrs = {"brand": brand, "gender": gender, "age_group": GENDERS[gender], "base_colour": colour,
                 "season": season, "year": year, "usage": USAGE.get(category[-1], rng.choice(["Casual", "Casual", "Sports"]))}
        specific = {name: rng.choice(options) for name, options in ARTICLES[category].items()}
        attrs.update(specific)
        style = specific.get("Fit", specific.get("Neck", specific.get("Material", specific.get("Dial Shape", ""))))
        title = f"{brand} {gender} {colour} {style} {NOUN[category[-1]]}".replace("  ", " ")
        material = next((v for k, v in specific.items() if k in ("Fabric", "Material", "Strap Material")), None)
        description = f"A {colour.lower()} {NOUN[category[-1]].lower()} by {brand}"
        if material and rng.random() < 0.6:
            description += f", made of {material.lower()}"
        if "Sleeve Length" in specific and rng.random() < 0.5:
            description += f", with {specific['Sleeve Length'].lower()}"
        description += "." + f" Part of the {season.lower()} {year} collection." * (rng.random() < 0.3)
        kept = {k: v for k, v in attrs.items() if k in ("brand", "gender") or rng.random() >= missing_rate}
        products.append(Product(f"S{i:05d}", title, description, category, kept))
    return Catalog(products, f"<sample seed={seed}>")


# Electronics: (category) -> attribute -> values. Each value has several ways a listing writes it (see _FORMS);
# brands write their model numbers in a pattern of their own, so the number hints at the brand.
ELECTRONICS = {
    ("Electronics", "Storage", "External Hard Drives"): {
        "brand": ["Seagate", "WD", "Toshiba", "LaCie"], "capacity": ["1TB", "2TB", "4TB", "5TB", "8TB"],
        "interface": ["USB 3.0", "USB-C", "Thunderbolt 3"], "form_factor": ['2.5"', '3.5"'],
        "colour": ["Black", "Silver", "Blue", "Red"]},
    ("Electronics", "Storage", "SSDs"): {
        "brand": ["Samsung", "Crucial", "Kingston", "SanDisk", "WD"], "capacity": ["250GB", "500GB", "1TB", "2TB"],
        "interface": ["SATA III", "NVMe PCIe 3.0", "NVMe PCIe 4.0"], "form_factor": ['2.5"', "M.2 2280"],
        "read_speed": ["550 MB/s", "3500 MB/s", "5000 MB/s", "7000 MB/s"]},
    ("Electronics", "Computers", "Laptops"): {
        "brand": ["Lenovo", "HP", "Dell", "ASUS", "Acer"], "screen_size": ['13.3"', '14"', '15.6"', '17.3"'],
        "ram": ["8GB", "16GB", "32GB"], "capacity": ["256GB", "512GB", "1TB"],
        "processor": ["Intel Core i5-1235U", "Intel Core i7-1255U", "AMD Ryzen 5 5600U", "AMD Ryzen 7 5800H"],
        "colour": ["Black", "Silver", "Grey"]},
    ("Electronics", "Computers", "Monitors"): {
        "brand": ["LG", "Samsung", "Dell", "BenQ", "AOC"], "screen_size": ['24"', '27"', '32"', '34"'],
        "resolution": ["1920x1080", "2560x1440", "3840x2160"], "refresh_rate": ["60Hz", "75Hz", "144Hz", "165Hz"],
        "ports": ["HDMI, DisplayPort", "2x HDMI", "HDMI, DisplayPort, USB-C"]},
    ("Electronics", "Accessories", "Cables"): {
        "brand": ["Anker", "Belkin", "UGREEN", "Amazon Basics"],
        "connector": ["USB-C to USB-C", "USB-A to USB-C", "USB-C to Lightning", "HDMI to HDMI"],
        "length": ["0.5m", "1m", "2m", "3m"], "power": ["60W", "100W", "240W"], "colour": ["Black", "White"]},
}
_MODEL = {"Seagate": "ST{n}{L}{n}", "WD": "WD{n}{L}{L}", "Toshiba": "HDT{L}{n}", "LaCie": "STH{L}{n}",
          "Samsung": "MZ-{L}{n}{L}", "Crucial": "CT{n}{L}{L}", "Kingston": "S{L}{n}", "SanDisk": "SDSS{L}{n}",
          "Lenovo": "82{L}{n}{L}", "HP": "{n}{L}{L}", "Dell": "{L}{n}", "ASUS": "{L}{n}{L}-{L}", "Acer": "A{n}-{L}",
          "LG": "{n}GN{n}", "BenQ": "EW{n}{L}", "AOC": "Q{n}{L}", "Anker": "A{n}", "Belkin": "CAB{n}",
          "UGREEN": "US{n}", "Amazon Basics": "AB-{n}"}
_NOISE = ["NEW", "(Renewed)", "Fast Shipping", "2023 Model", "Free Delivery", "Bulk", "Ships from EU", "OEM"]


def _size_forms(attribute: str, value: str) -> list[str]:
    """Ways to write a capacity ("2TB", "2 TB", "2 Terabytes", "2000GB"), memory ("16GB", "16 GB RAM", "16G")
    or a length ("2m", "2 m", "2 metre", "6.6ft")."""
    unit = value.lstrip("0123456789.")
    number = float(value[:-len(unit)])
    n = f"{number:g}"
    if unit == "m":
        return [value, f"{n} m", f"{n} metre", f"{number * 3.281:.1f}ft"]
    if attribute == "ram":
        return [value, f"{n} GB RAM", f"{n}G", f"{n} Gigabytes"]
    forms = [value, f"{n} {unit}", f"{n} {'Gigabytes' if unit == 'GB' else 'Terabytes'}", f"{n}{unit.lower()}"]
    if unit == "TB":
        forms.append(f"{number * 1000:g}GB")
    elif number >= 500:
        forms.append(f"{number / 1000:g}TB")
    return forms


def _forms(attribute: str, value: str) -> list[str]:
    """How listings state ``value`` of ``attribute``: the catalog's form first, then others."""
    if attribute in ("capacity", "length", "ram"):
        return _size_forms(attribute, value)
    if attribute in ("screen_size", "form_factor") and value.endswith('"'):
        n = value[:-1]
        return [value, f"{n} inch", f"{n}-inch", f"{n}in", f"{n}''"]
    if attribute == "resolution":
        w, h = value.split("x")
        return [value, f"{w} x {h}", f"{w}×{h}", {"1080": "Full HD", "1440": "QHD", "2160": "4K UHD"}[h], f"{h}p"]
    if attribute in ("refresh_rate", "power", "read_speed"):
        n, unit = value.rstrip("HzWMB/s "), value[len(value.rstrip("HzWMB/s ")):].strip()
        return [value, f"{n} {unit}", f"{n}{unit.lower()}"]
    if attribute == "ports":
        return [value, value.replace(", ", " + "), value.replace("DisplayPort", "DP").replace(", ", "/"),
                value.replace("2x ", "dual ")]
    if attribute == "processor":
        short = value.split()[-1]
        return [value, value.replace("Intel ", "").replace("AMD ", ""), short.replace("-", " "), short]
    return [value, value.upper(), value.lower()]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def make_electronics_catalog(num_products: int = 400, *, missing_rate: float = 0.2, unstated_rate: float = 0.25,
                             typo_rate: float = 0.05, seed: int = 0) -> Catalog:
    """A technical catalog: listings state values the way web shops do, with units in varied forms ("2TB",
    "2 TB", "2 Terabytes", "2000GB"; '15.6"', "15.6 inch"), model numbers (one per product, so most values
    of ``model_number`` appear once), ports and brands.

    Args:
        missing_rate: share of the optional cells left empty (brand and model number are always known).
        unstated_rate: share of the values the text does not state.
        typo_rate: share of the stated words with two letters swapped.
    """
    rng = random.Random(seed)
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    products = []
    for i in range(num_products):
        category = rng.choice(sorted(ELECTRONICS))
        attrs = {a: rng.choice(values) for a, values in ELECTRONICS[category].items()}
        model = "".join(str(rng.randrange(10, 1000)) if part == "{n}" else rng.choice(letters) if part == "{L}"
                        else part for part in re.split(r"(\{n\}|\{L\})", _MODEL.get(attrs["brand"], "{L}{n}")))
        attrs["model_number"] = model
        stated = []
        for a, v in attrs.items():
            if a in ("brand", "model_number") and rng.random() < 0.9 or rng.random() >= unstated_rate:
                form = v if a in ("brand", "model_number") else rng.choice(_forms(a, v))
                stated.append(" ".join(_typo(w, rng) if rng.random() < typo_rate else w for w in form.split(" ")))
        brand = stated[:1] if "brand" in attrs and stated and stated[0].lower() == attrs["brand"].lower() else []
        rest = stated[len(brand):]
        rng.shuffle(rest)
        cut = rng.randrange(1, 4)
        title = " ".join(brand + rest[:cut] + [category[-1].rstrip("s")] + rng.sample(_NOISE, rng.randrange(0, 2)))
        description = ", ".join(rest[cut:] + rng.sample(_NOISE, rng.randrange(0, 3)))
        kept = {a: v for a, v in attrs.items() if a in ("brand", "model_number") or rng.random() >= missing_rate}
        products.append(Product(f"E{i:05d}", title, description, category, kept))
    return Catalog(products, f"<electronics sample seed={seed}>")


SAMPLES = {"fashion": make_catalog, "electronics": make_electronics_catalog}
