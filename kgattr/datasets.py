"""A synthetic fashion catalog with realistic structure, for the demo, the docs and the tests.

Attribute values depend on each other the way they do in real catalogs: age group follows gender,
sleeve length follows the article, season and year follow the (brand, article) collection, and the
title states brand, gender and colour while the description sometimes states fabric or material.
"""
from __future__ import annotations

import random

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
