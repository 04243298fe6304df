"""Product categories for transaction logs that have product names but no categories.

How categories are derived (README text)
-----------------------------------------
UCI Online Retail names every product ("JUMBO BAG RED RETROSPOT", "WHITE HANGING HEART
T-LIGHT HOLDER") but has no category column. ValueDesk derives a small, readable category
set from the names with ordered keyword rules: each product is matched against the rules
below from top to bottom, and the first rule with a word in the name wins. The order
resolves names that fit two rules: "CHRISTMAS" items are seasonal whatever they are,
"T-LIGHT HOLDER" is lighting rather than decor, "LUNCH BAG" is a bag rather than kitchen.
The keywords came from reading the words that carry the most revenue in Online Retail and
the names left in "Other", so on that file 12 named categories cover 99.7% of product
revenue (3,659 products; "Other" holds the last 0.3%). That figure is in-sample: another
shop's names need their own keywords, and every build reports the share its categories
cover so a low figure shows. Postage, fees and manual adjustments go to "Postage & fees"
and are never shown as a customer's favourite products.
Rules rather than clustering name embeddings: the rules are readable, editable, stable
between builds (a customer's favourite category doesn't change because a cluster shifted)
and need no model. When the source has its own `category` column, that wins and the rules
only fill products that have none.

The mapping (product_id -> product_name, category, source) is written to
`<data_dir>/categories.parquet` so other tools and the README can show it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from predictor.atomic import atomic_path

OTHER = "Other"
FEES = "Postage & fees"

# Non-product lines (postage, fees, adjustments): by whole name or by Online Retail's stock codes.
FEE_NAMES = re.compile(r"^(?:DOTCOM )?POSTAGE$|^(?:NEXT DAY )?CARRIAGE$|^MANUAL$|^DISCOUNT$|^BANK CHARGES$|"
                       r"^AMAZON FEE$|^SAMPLES$|^ADJUST BAD DEBT$|^CRUK COMMISSION$")
FEE_CODES = frozenset({"POST", "DOT", "C2", "M", "D", "BANK CHARGES", "AMAZONFEE", "S", "B", "CRUK"})

# Ordered: first match wins. Words are matched as whole words (optional plural "S"/"ES").
CATEGORY_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("Christmas & seasonal", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "SNOWMAN",
                              "BAUBLE", "EASTER", "HALLOWEEN", "NATIVITY", "STOCKING", "ANGEL")),
    ("Lighting & candles", ("T-LIGHT", "TLIGHT", "CANDLE", "LANTERN", "LIGHT", "LED", "LAMP", "CHANDELIER",
                            "TEALIGHT", "INCENSE", "OIL BURNER", "CANDLEPOT", "LAMPSHADE")),
    ("Bags & purses", ("BAG", "SHOPPER", "PURSE", "WALLET", "TOTE", "BACKPACK", "RUCKSACK")),
    ("Bath & wellbeing", ("BATH", "SOAP", "SPONGE", "HOT WATER", "HAND WARMER", "POCKET WARMER", "PLASTERS",
                          "FIRST AID", "TISSUES", "TOILET", "SHOWER", "LAVENDER", "COSMETIC", "FLANNEL",
                          "TOOTHBRUSH", "PERFUME", "FRAGRANCE", "BEAUTY", "SPA", "MASSAGE", "HOTTIE",
                          "LIP GLOSS", "NAIL")),
    ("Party & gift wrap", ("PARTY", "BIRTHDAY", "WRAP", "RIBBON", "GIFT", "CARD", "BUNTING", "BALLOON",
                           "CONFETTI", "TISSUE", "ENVELOPE", "NAPKIN", "PAPER CHAIN", "GARLAND", "PINATA",
                           "WEDDING", "PLACE SETTING", "SOMBRERO", "PENNANT", "COCKTAIL", "HONEYCOMB")),
    ("Kitchen & dining", ("CAKE", "CAKESTAND", "LUNCH", "MUG", "CUP", "SAUCER", "TEACUP", "TEAPOT", "TEA",
                          "COFFEE", "PLATE", "BOWL", "CUTLERY", "JUG", "BAKING", "KITCHEN", "APRON",
                          "TOWEL", "DOILY", "DOILEY", "DOILIES", "PANTRY", "RECIPE", "SCALES", "EGG", "SPOON",
                          "TRAY", "GLASS", "JAM", "BREAD", "COOKIE", "POPCORN", "SNACK", "BOTTLE",
                          "CHOPPING", "DINER", "MILK", "SUGAR", "BISCUIT", "CAKE CASES", "JELLY",
                          "STRAW", "PLACEMAT", "COASTER", "BEAKER", "TUMBLER", "SPICE", "OVEN",
                          "TIFFIN", "FOOD", "PICNIC", "LADLE", "WHISK", "COLANDER", "CHOCOLATE",
                          "ICE", "FRIDGE", "TOAST", "DRINK", "WINE", "PAN", "CHOPSTICK", "TRIVET", "DISH", "WASHING UP", "TABLECLOTH", "PLATTER", "LOLLY", "TOASTRACK", "COOKING")),
    ("Toys & children", ("TOY", "CHILDRENS", "CHILD", "KIDS", "BABY", "DOLL", "DOLLY", "SPACEBOY", "CIRCUS",
                         "JIGSAW", "GAME", "PLAYHOUSE", "DOMINOES", "HARMONICA", "SKIPPING", "BALL",
                         "TEDDY", "PUPPET", "BLOCKS", "SOLDIER", "RACING", "CAR", "TRAIN", "ROCKET",
                         "SPINNING TOP", "MAGIC", "DINOSAUR", "BINGO", "MARBLES", "PLAYING", "SNAKES",
                         "LADDERS", "KNITTING NANCY", "BUBBLES", "SPACE", "NINJA", "PIRATE", "GLIDER", "LUDO", "ROCKING HORSE",
                         "CROSSES", "SPORTING", "TATTOO", "CREEPY CRAWLIES", "HELICOPTER", "FLYING DISC",
                         "WHEELBARROW")),
    ("Stationery & craft", ("PEN", "PENCIL", "NOTEBOOK", "BOOK", "STICKER", "CRAFT", "SEWING", "KIT",
                            "ERASER", "RULER", "TAPE", "STAMP", "CHALK", "CHALKBOARD", "PAPER", "PAD",
                            "NOTE", "DIARY", "CALENDAR", "CRAYONS", "COLOURING", "PAINT", "GLITTER",
                            "FELTCRAFT", "FELT", "SCISSORS", "BUTTON", "BUTTONS", "KNITTING", "MEMO",
                            "JOURNAL", "SKETCHBOOK", "ALBUM", "ORGANISER", "CLIPS", "PIN", "MAGNET",
                            "LABEL", "BOOKMARK", "STENCIL", "TAG", "BLACKBOARD", "BLACK BOARD", "MEMOBOARD",
                            "MODELLING", "SCISSOR", "NOTEPAD", "PATCHES", "STATIONERY", "POSTCARD", "WRITING",
                            "PAPERWEIGHT")),
    ("Garden & outdoor", ("GARDEN", "PARASOL", "BIRD", "BIRDHOUSE", "WATERING", "PLANT", "PLANTER", "POT",
                          "FLOWER", "SEED", "GNOME", "TOADSTOOL", "FEEDER", "OUTDOOR", "WINDMILL",
                          "WIND CHIME", "CHIME", "HAMMOCK", "UMBRELLA", "TRELLIS", "FENCE", "LAWN", "BEACH",
                          "BUCKET", "SPADE", "TROWEL", "HERB", "TERRARIUM", "GREENHOUSE", "TWINE")),
    ("Storage & organisation", ("BOX", "BOXES", "TIN", "STORAGE", "BASKET", "HAMPER", "DRAWER", "CABINET",
                                "JAR", "CASE", "TRINKET", "CRATE", "HOLDER", "RACK", "HOOK", "PEG", "BIN",
                                "CHEST", "TRUNK", "CADDY", "POUCH", "SHELF", "STAND", "ORGANISER", "TUBE",
                                "CONTAINER", "KNOB", "DRAWERKNOB", "COAT", "KEY", "LOCKER", "LETTER")),
    ("Fashion & accessories", ("NECKLACE", "BRACELET", "EARRINGS", "RING", "HAIR", "SCARF", "HAT", "BROOCH",
                               "CHARM", "JEWELLERY", "JEWEL", "BANGLE", "SLIPPER", "GLOVES", "MITTENS",
                               "SOCKS", "BEADS", "DIAMANTE", "SUNGLASSES", "COMPACT", "KEYRING", "LIPSTICK",
                               "HANDBAG", "GLOVE", "BELT", "TIARA", "PONCHO", "BADGE", "HAIRCLIPS", "FAN")),
    ("Home decor", ("FRAME", "SIGN", "CLOCK", "HANGING", "HEART", "DECORATION", "ORNAMENT", "CUSHION",
                    "DOORMAT", "WALL", "VASE", "DOORSTOP", "THROW", "QUILT", "BLANKET", "CURTAIN",
                    "PLAQUE", "PICTURE", "PHOTO", "ART", "PRINT", "POSTER", "WREATH", "FLAG", "DOOR",
                    "MAT", "RUG", "DRAUGHT", "STATUE", "FIGURE", "SCULPTURE", "CANVAS", "MOBILE",
                    "CUSHION COVER", "TABLE", "CHAIR", "STOOL", "SEAT", "LOVE", "FEATHER", "BELL",
                    "DECORATIVE", "TASSEL", "GLOBE", "WOODEN", "ZINC", "ENAMEL", "METAL", "CERAMIC",
                    "DOVE", "STAR", "BIRDCAGE", "PAISLEY", "ROSE", "ROSES", "BUTTERFLY", "MIRROR",
                    "BUILDING BLOCK", "PIGGY BANK", "FLYING DUCKS", "DOORSIGN", "POUFFE")),
]


def _compile_rules(rules: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, re.Pattern[str]]]:
    compiled = []
    for category, words in rules:
        alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        # Whole words only, with an optional plural, so "PAN" doesn't match "PANTRY" or "PAINT" "PAINTED".
        compiled.append((category, re.compile(rf"(?<![A-Z0-9])(?:{alternation})(?:S|ES)?(?![A-Z0-9])")))
    return compiled


_COMPILED = _compile_rules(CATEGORY_RULES)
CATEGORIES: list[str] = [c for c, _ in CATEGORY_RULES] + [OTHER, FEES]


def categorize_name(name: object, product_id: object = None) -> str:
    """The category of one product by the ordered keyword rules; "Other" when none applies."""
    if isinstance(product_id, str) and product_id.strip().upper() in FEE_CODES:
        return FEES
    if not isinstance(name, str) or not name.strip():
        return OTHER
    text = " ".join(name.upper().replace("’", "'").split())
    if FEE_NAMES.match(text):
        return FEES
    for category, pattern in _COMPILED:
        if pattern.search(text):
            return category
    return OTHER


class CategoryReport(BaseModel):
    """How well the category mapping covers the log's revenue."""

    products: int
    categories: int  # named categories in use ("Other" and fees not counted)
    from_source: int  # products whose category came from the source data
    from_rules: int  # products categorised by the keyword rules (not "Other")
    revenue_coverage: float  # share of positive product revenue (fees excluded) not in "Other"
    revenue_by_category: dict[str, float]


class CategoryResult(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    mapping: pd.DataFrame  # product_id, product_name, category, source
    report: CategoryReport


def build_category_map(transactions: pd.DataFrame) -> CategoryResult:
    """Map every product_id in the log to a category (source column first, then keyword rules).

    Products are keyed by product_id; a product's name is its most frequent name in the log
    (Online Retail spells some stock codes several ways). Logs without product ids (CDNOW)
    give an empty mapping.
    """
    cols = ["product_id", "product_name", "category", "source"]
    if "product_id" not in transactions or transactions["product_id"].isna().all():
        return CategoryResult(mapping=pd.DataFrame(columns=cols).astype("string"),
                              report=CategoryReport(products=0, categories=0, from_source=0, from_rules=0,
                                                    revenue_coverage=0.0, revenue_by_category={}))
    tx = transactions[transactions["product_id"].notna()]
    names = tx["product_name"] if "product_name" in tx else pd.Series(pd.NA, index=tx.index, dtype="string")
    source_cat = tx["category"] if "category" in tx else pd.Series(pd.NA, index=tx.index, dtype="string")
    frame = pd.DataFrame({"product_id": tx["product_id"].astype("string"),
                          "product_name": names.astype("string"),
                          "category": source_cat.astype("string"),
                          "amount": tx["amount"].astype("float64")})
    name = (frame.dropna(subset=["product_name"])
            .groupby(["product_id", "product_name"], observed=True).size().rename("n").reset_index()
            .sort_values(["product_id", "n", "product_name"], ascending=[True, False, True])
            .drop_duplicates("product_id").set_index("product_id")["product_name"])
    src = (frame.dropna(subset=["category"])
           .groupby(["product_id", "category"], observed=True).size().rename("n").reset_index()
           .sort_values(["product_id", "n", "category"], ascending=[True, False, True])
           .drop_duplicates("product_id").set_index("product_id")["category"])
    products = pd.Index(frame["product_id"].unique()).sort_values()
    mapping = pd.DataFrame(index=products)
    mapping.index.name = "product_id"
    mapping["product_name"] = name.reindex(products).astype("string")
    mapping["category"] = src.reindex(products).astype("string")
    mapping["source"] = pd.Series("source", index=products, dtype="string").where(mapping["category"].notna())
    missing = mapping["category"].isna()
    mapping.loc[missing, "category"] = [categorize_name(n, p) for p, n in
                                        mapping.loc[missing, "product_name"].items()]
    mapping.loc[missing, "source"] = "rules"
    mapping = mapping.reset_index().astype("string")

    return CategoryResult(mapping=mapping, report=category_report(transactions, mapping))


def category_report(transactions: pd.DataFrame, mapping: pd.DataFrame) -> CategoryReport:
    """Coverage of a mapping over a log: products, sources, and the share of revenue it names."""
    if mapping.empty:
        return CategoryReport(products=0, categories=0, from_source=0, from_rules=0, revenue_coverage=0.0,
                              revenue_by_category={})
    tx = transactions[transactions["product_id"].notna() & (transactions["amount"] > 0)]
    revenue = tx.groupby(tx["product_id"].astype("string"))["amount"].sum()
    by_cat = (mapping.set_index("product_id")["category"].to_frame().join(revenue.rename("revenue"))
              .fillna({"revenue": 0.0}).groupby("category")["revenue"].sum())
    product_revenue = by_cat.drop(labels=[FEES], errors="ignore")
    total = float(product_revenue.sum())
    covered = float(product_revenue.drop(labels=[OTHER], errors="ignore").sum())
    return CategoryReport(
        products=len(mapping),
        categories=int(mapping.loc[~mapping["category"].isin([OTHER, FEES]), "category"].nunique()),
        from_source=int((mapping["source"] == "source").sum()),
        from_rules=int(((mapping["source"] == "rules") & (mapping["category"] != OTHER)).sum()),
        revenue_coverage=round(covered / total, 4) if total > 0 else 0.0,
        revenue_by_category={k: round(float(v), 2) for k, v in by_cat.sort_values(ascending=False).items()},
    )


def apply_categories(transactions: pd.DataFrame, mapping: pd.DataFrame) -> pd.DataFrame:
    """A copy of the log with `category` filled from the mapping where the source has none."""
    out = transactions.copy()
    if mapping.empty or "product_id" not in out:
        return out
    lookup = mapping.set_index("product_id")["category"]
    derived = out["product_id"].map(lookup).astype("string")
    current = out["category"].astype("string") if "category" in out else pd.Series(pd.NA, index=out.index, dtype="string")
    out["category"] = current.fillna(derived)
    return out


def categories_path(data_dir: Path) -> Path:
    return Path(data_dir) / "categories.parquet"


def save_category_map(mapping: pd.DataFrame, data_dir: Path) -> Path:
    """Write the mapping atomically (a reader never sees half a file)."""
    path = categories_path(data_dir)
    with atomic_path(path) as tmp:
        mapping.to_parquet(tmp, index=False)
    return path


def load_category_map(data_dir: Path) -> pd.DataFrame | None:
    path = categories_path(data_dir)
    return pd.read_parquet(path) if path.exists() else None
