"""A marketer's own data (issue 21, first parts): an orders log that names no products, with its products
in a second file, on a real Online Retail cut; and an honest answer when a log has no products at all."""

from __future__ import annotations

import pandas as pd
import pytest

from _tiers_data import sample_csv
from agent.settings import AgentSettings


def _two_files(root):
    raw = pd.read_csv(sample_csv(), dtype=str, keep_default_na=False)
    products = raw[["StockCode", "Description"]].drop_duplicates("StockCode").rename(
        columns={"StockCode": "SKU", "Description": "Title"})
    products.iloc[:5].assign(Title="").to_csv(root / "ignored.csv", index=False)
    products.to_csv(root / "products.csv", index=False)
    orders = raw.assign(Description="")  # the orders export names no products, only their SKUs
    orders.to_csv(root / "orders.csv", index=False)
    return root / "orders.csv", root / "products.csv"


def _build(root, name, **kwargs):
    from predictor.build import build

    settings = AgentSettings(data_dir=root / name, training_profile="fast", embedding_model="hashing", threads=1)
    report = build(settings, progress=False, **kwargs)
    return settings, report


@pytest.fixture(scope="module")
def shops(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_data")
    orders, products = _two_files(root)
    with_products = _build(root, "with", data_path=orders, schema="online_retail", products=products,
                           products_map="product_id=SKU,product_name=Title")
    without = _build(root, "without", data_path=orders, schema="online_retail")
    one_file = _build(root, "one_file", data_path=sample_csv(), schema="online_retail")  # names on every line
    return with_products, without, one_file


def test_an_orders_log_and_a_products_file_build_into_product_aware_profiles(shops):
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    (settings, report), _, (one_file, _) = shops
    assert report.products["unmatched_lines"] == 0 and report.products["products"] > 3000
    assert report.category_coverage and report.category_coverage > 0.9
    assert "Products:" in report.summary()
    def profiles(s):
        return pd.read_parquet(s.data_dir / "current" / "profiles.parquet").set_index("customer_id")["profile_text"]

    def favourites(texts):
        return texts.str.extract(r"(Favourite categories: .*?Favourite products: .*?\"\.)")[0]

    joined, named = favourites(profiles(settings)), favourites(profiles(one_file))
    assert joined.notna().mean() > 0.95
    # What they buy reads as in a log that names its products on every line (the products file keeps one
    # name per SKU where the log has a few spellings).
    assert (joined == named).mean() > 0.75  # 81% on this cut; 0% without the products file

    def search(s):
        return ToolRegistry(ToolDeps(s)).call("search_profiles", {"query": "tea cups and teapots", "limit": 5}).result

    result = search(settings)
    assert result["returned"] == 5 and result.get("product_information") is not False
    hits = {h["customer_id"] for h in result["hits"]}
    assert len(hits & {h["customer_id"] for h in search(one_file)["hits"]}) >= 3


def test_a_product_question_on_data_without_products_gets_an_honest_answer(shops):
    from agent.service import AgentService
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry

    _, (settings, report), _ = shops
    assert not report.category_coverage and "name a product" in report.summary()  # the build says so too
    result = ToolRegistry(ToolDeps(settings)).call("search_profiles", {"query": "frozen food"}).result
    assert result["returned"] == 0 and result["product_information"] is False
    assert "no product information" in result["note"]
    answer = AgentService(settings).chat("find customers who buy a lot of frozen food").answer
    assert "no product information" in answer and "value, churn risk, tier" in answer


def test_a_products_file_that_does_not_fit_is_refused_before_the_build(tmp_path):
    from predictor.errors import DataError

    orders, products = _two_files(tmp_path)
    with pytest.raises(DataError, match="has no column 'Name'"):
        _build(tmp_path, "bad", data_path=orders, schema="online_retail", products=products,
               products_map="product_id=SKU,product_name=Name")
    with pytest.raises(DataError, match="must map product_id"):
        _build(tmp_path, "bad", data_path=orders, schema="online_retail", products=products,
               products_map="product_name=Title")
    assert not (tmp_path / "bad" / "current").exists()


def test_a_dollar_log_is_answered_in_dollars_everywhere(tmp_path, monkeypatch, capsys):
    from agent.service import AgentService
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    for key, value in {"VALUEDESK_DATA_DIR": str(tmp_path / "usd"), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_EMBEDDING_MODEL": "hashing", "VALUEDESK_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VALUEDESK_CURRENCY_SYMBOL", raising=False)
    load_settings.cache_clear()
    assert main(["build", "--data", str(sample_csv()), "--currency", "XYZ", "--quiet"]) == 2
    assert "Unknown currency code 'XYZ'" in capsys.readouterr().err
    assert main(["build", "--data", str(sample_csv()), "--currency", "usd", "--quiet", "--no-index"]) == 0
    load_settings.cache_clear()
    settings = load_settings()  # a later process reads the currency the build recorded
    assert settings.currency_symbol == "$"
    profiles = pd.read_parquet(settings.data_dir / "current" / "profiles.parquet")["profile_text"]
    assert profiles.str.contains(r"\$").all() and not profiles.str.contains("£").any()
    found = ToolRegistry(ToolDeps(settings)).call("find_customers", {"limit": 3}).result
    assert found.get("currency", "$") == "$"
    for question in ("who are my most valuable customers?", "plan a win-back campaign for lapsed customers with "
                     "a budget of 2000", "how are my customers spread across tiers?"):
        answer = AgentService(settings).chat(question).answer
        assert "$" in answer and "£" not in answer, answer[:300]


def shopify_export(path):
    """Online Retail lines written as Shopify's orders export: one row per line item, the order's fields on
    its first row only, the customer known by e-mail, prices in US dollars; cancellations as refunded orders."""
    raw = pd.read_csv(sample_csv(), dtype=str, keep_default_na=False)
    raw = raw[raw["CustomerID"].ne("")]
    first = ~raw.duplicated("InvoiceNo")
    rows = pd.DataFrame({
        "Name": "#" + raw["InvoiceNo"].str.lstrip("C"),
        "Email": ("buyer" + raw["CustomerID"].str.replace(".0", "", regex=False) + "@shop-test.example").where(first, ""),
        "Financial Status": raw["InvoiceNo"].str.startswith("C").map({True: "refunded", False: "paid"}).where(first, ""),
        "Created at": (pd.to_datetime(raw["InvoiceDate"]).dt.strftime("%Y-%m-%d %H:%M:%S") + " +0000").where(first, ""),
        "Currency": pd.Series("USD", index=raw.index).where(first, ""),
        "Lineitem quantity": raw["Quantity"].str.lstrip("-"), "Lineitem name": raw["Description"],
        "Lineitem price": raw["UnitPrice"], "Lineitem sku": raw["StockCode"],
        "Billing Name": pd.Series("Zebedee Shopifyson", index=raw.index).where(first, ""),
        "Billing Country": raw["Country"].where(first, "")})
    rows.to_csv(path, index=False)
    return path


def test_a_shopify_export_builds_in_dollars_with_product_aware_search_and_contacts_apart(tmp_path, monkeypatch,
                                                                                          capsys):
    from agent.service import AgentService
    from tools.deps import ToolDeps
    from tools.registry import ToolRegistry
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    for key, value in {"VALUEDESK_DATA_DIR": str(tmp_path / "shop"), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_EMBEDDING_MODEL": "hashing", "VALUEDESK_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VALUEDESK_CURRENCY_SYMBOL", raising=False)
    load_settings.cache_clear()
    export = shopify_export(tmp_path / "orders_export.csv")
    assert main(["build", "--data", str(export), "--schema", "shopify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Shopify export:" in out and "currency USD" in out and "refunded, voided or cancelled orders left out" in out
    load_settings.cache_clear()
    settings = load_settings()
    assert settings.currency_symbol == "$"
    profiles = pd.read_parquet(settings.data_dir / "current" / "profiles.parquet")
    assert profiles["customer_id"].str.startswith("shopify-").all() and len(profiles) > 1000
    text = " ".join(profiles["profile_text"])
    assert "Favourite products" in text and "$" in text and "£" not in text
    assert "shop-test.example" not in text and "Zebedee" not in text  # contact data stays apart
    contacts = pd.read_parquet(settings.data_dir / "contacts" / "contacts.parquet")
    assert contacts["email"].str.endswith("@shop-test.example").all() and set(contacts["customer_id"]) >= set(
        profiles["customer_id"])
    hits = ToolRegistry(ToolDeps(settings)).call("search_profiles", {"query": "tea cups and teapots"}).result
    assert hits["returned"] > 0 and hits.get("product_information") is not False
    answer = AgentService(settings).chat("who are my most valuable customers?").answer
    assert "$" in answer and "£" not in answer and "shop-test.example" not in answer


def test_an_orders_file_and_an_order_lines_file_build_in_their_currency(tmp_path, monkeypatch, capsys):
    from valuedesk.cli import main
    from valuedesk.config import load_settings

    raw = pd.read_csv(sample_csv(), dtype=str, keep_default_na=False)
    raw = raw[raw["CustomerID"].ne("")]
    heads = raw.drop_duplicates("InvoiceNo")
    pd.DataFrame({"Order ID": heads["InvoiceNo"], "Order Date": heads["InvoiceDate"],
                  "Order Status": heads["InvoiceNo"].str.startswith("C").map({True: "cancelled", False: "completed"}),
                  "Customer User ID": heads["CustomerID"].str.replace(".0", "", regex=False), "Order Currency": "EUR",
                  "Billing Country": heads["Country"], "Billing Email": "orders-lines@contact-test.example"}
                 ).to_csv(tmp_path / "orders.csv", index=False)
    total = (pd.to_numeric(raw["Quantity"]) * pd.to_numeric(raw["UnitPrice"])).round(2)
    pd.DataFrame({"Order ID": raw["InvoiceNo"], "Product ID": raw["StockCode"], "Item Name": raw["Description"],
                  "Quantity": raw["Quantity"], "Line Total": total}).to_csv(tmp_path / "lines.csv", index=False)
    for key, value in {"VALUEDESK_DATA_DIR": str(tmp_path / "woo"), "VALUEDESK_TRAINING_PROFILE": "fast",
                       "VALUEDESK_EMBEDDING_MODEL": "hashing", "VALUEDESK_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("VALUEDESK_CURRENCY_SYMBOL", raising=False)
    load_settings.cache_clear()
    assert main(["build", "--schema", "orders_lines", "--data", str(tmp_path / "orders.csv"), "--quiet",
                 "--no-index"]) == 2
    assert "needs --lines" in capsys.readouterr().err
    assert main(["build", "--schema", "orders_lines", "--data", str(tmp_path / "orders.csv"), "--lines",
                 str(tmp_path / "lines.csv"), "--quiet", "--no-index"]) == 0
    assert "cancelled orders left out; currency EUR" in capsys.readouterr().out
    load_settings.cache_clear()
    settings = load_settings()
    profiles = pd.read_parquet(settings.data_dir / "current" / "profiles.parquet")
    one_file = raw.loc[~raw["InvoiceNo"].str.startswith("C"), "CustomerID"].str.replace(".0", "", regex=False).nunique()
    # Every buying customer, less the one the cleaning drops in the one-file log too (lines of zero price only).
    assert settings.currency_symbol == "€" and len(profiles) == one_file - 1 == 1096
    text = " ".join(profiles["profile_text"])
    assert "Favourite products" in text and "€" in text and "£" not in text and "contact-test" not in text


def test_a_bad_date_or_amount_in_an_export_names_its_file_row_and_column(tmp_path):
    from predictor.data.orders_lines import read_orders_lines
    from predictor.data.shopify import read_shopify
    from predictor.errors import DataError

    export = pd.read_csv(shopify_export(tmp_path / "shop.csv"), dtype=str, keep_default_na=False)
    export.loc[3, "Lineitem price"] = "twelve"
    export.to_csv(tmp_path / "bad_price.csv", index=False)
    with pytest.raises(DataError, match=r"bad_price.csv row 5: Lineitem price 'twelve' is not a number"):
        read_shopify(tmp_path / "bad_price.csv")
    pd.DataFrame({"Order ID": ["1", "2"], "Order Date": ["2011-01-04", "yesterday"], "Customer User ID": ["7", "8"],
                  "Order Status": ["completed"] * 2}).to_csv(tmp_path / "orders.csv", index=False)
    pd.DataFrame({"Order ID": ["1", "2", "2"], "Product ID": ["a", "b", "c"], "Quantity": ["1", "2", "x"],
                  "Line Total": ["3.5", "4", "5"]}).to_csv(tmp_path / "lines.csv", index=False)
    with pytest.raises(DataError, match=r"orders.csv row 3: Order Date 'yesterday' is not a date"):
        read_orders_lines(tmp_path / "orders.csv", tmp_path / "lines.csv")
    pd.DataFrame({"Order ID": ["1", "2"], "Order Date": ["2011-01-04", "2011-01-05"], "Customer User ID": ["7", "8"],
                  "Order Status": ["completed"] * 2}).to_csv(tmp_path / "orders.csv", index=False)
    with pytest.raises(DataError, match=r"lines.csv row 4: Quantity 'x' is not a number"):
        read_orders_lines(tmp_path / "orders.csv", tmp_path / "lines.csv")
